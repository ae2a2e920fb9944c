-- transfer.lua: re-queue a contact with new skills (and language), keeping its enqueue time.
-- KEYS: the router layout (see common.lua). ARGV[1] now, ARGV[2] contact id,
-- ARGV[3] required skills JSON, ARGV[4] optional skills JSON or '' (keep),
-- ARGV[5] language or '' (keep), ARGV[6] '1' to exclude the current agent.
local cid = ARGV[2]
local c = get_contact(cid)
if not c then return fail('unknown_contact', 'unknown contact ' .. cid) end
if c.st == 'completed' or c.st == 'cancelled' then
  return fail('invalid_state', 'contact ' .. cid .. ' is ' .. c.st, c.st)
end
local a, before = detach(c, 'transferred')
if a and ARGV[6] == '1' then c.excl[a.id] = NOW end
c.req = cjson.decode(ARGV[3])
if ARGV[4] ~= '' then c.opt = cjson.decode(ARGV[4]) end
if ARGV[5] ~= '' then c.lang = ARGV[5] end
c.rs = NOW
redis.call('ZREM', K_DUE, 'a|' .. cid)
to_queue(c)
put_contact(c)
emit('contact_transferred', cid, a and a.id or nil, {skills = c.req, language = c.lang})
emit('contact_requeued', cid, nil, {reason = 'transfer'})
if a then
  put_agent(a)
  state_changed(a, before)
end
match_contact(c)
if a then match_agent(get_agent(a.id)) end
return done({state = c.st})
