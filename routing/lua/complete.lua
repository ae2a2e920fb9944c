-- complete.lua: the conversation ended: free the slot, record handle time, maybe wrap-up.
-- KEYS: the router layout (see common.lua). ARGV[1] now, ARGV[2] contact id.
local cid = ARGV[2]
local c = get_contact(cid)
if not c then return fail('unknown_contact', 'unknown contact ' .. cid) end
if c.st == 'completed' then return done({state = c.st}) end
if c.st ~= 'assigned' then
  return fail('invalid_state', 'contact ' .. cid .. ' is ' .. c.st .. ', not assigned', c.st)
end
local a = get_agent(c.ag)
local before = derive(a)
end_work(a, c)
redis.call('LPUSH', K_AHT[c.ch], num17(NOW - c.ac))
redis.call('LTRIM', K_AHT[c.ch], 0, P.aht_n - 1)
finish(c, 'completed')
put_contact(c)
put_agent(a)
emit('contact_completed', cid, a.id, {handle_s = NOW - c.ac})
state_changed(a, before)
match_agent(a)
return done({state = c.st})
