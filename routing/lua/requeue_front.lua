-- requeue_front.lua: the advisor dropped: the contact goes to the front of its queue (score
-- just below the current head), that agent excluded.
-- KEYS: the router layout (see common.lua). ARGV[1] now, ARGV[2] contact id.
local cid = ARGV[2]
local c = get_contact(cid)
if not c then return fail('unknown_contact', 'unknown contact ' .. cid) end
if c.st ~= 'offered' and c.st ~= 'assigned' then
  return fail('invalid_state', 'contact ' .. cid .. ' is ' .. c.st .. ', not with an agent', c.st)
end
local a = get_agent(c.ag)
local before = derive(a)
if c.st == 'offered' then
  free_slot(a, c)
  index(a)
  emit('offer_released', cid, a.id, {reason = 'requeue_front'})
else
  end_work(a, c)
end
c.excl[a.id] = NOW
local head = redis.call('ZRANGE', QK[c.lang][c.ch], 0, 0, 'WITHSCORES')
if head[2] and tonumber(head[2]) - 0.001 < tonumber(c.sc) then
  c.sc = num17(tonumber(head[2]) - 0.001)
end
to_queue(c)
put_contact(c)
emit('contact_requeued', cid, a.id, {reason = 'front'})
put_agent(a)
state_changed(a, before)
match_contact(c)
match_agent(get_agent(a.id))
return done({state = c.st})
