-- accept.lua: the agent accepts its offer (idempotent); a passed deadline expires it instead.
-- KEYS: the router layout (see common.lua). ARGV[1] now,
-- ARGV[2] contact id, ARGV[3] agent id.
local cid, aid = ARGV[2], ARGV[3]
local c = get_contact(cid)
if not c then return fail('unknown_contact', 'unknown contact ' .. cid) end
if c.st == 'assigned' and c.ag == aid then return done({assignment = offer_of(c)}) end
if c.st ~= 'offered' or c.ag ~= aid then
  return fail('invalid_state', 'contact ' .. cid .. ' is ' .. c.st .. ', not offered to ' .. aid, c.st)
end
if NOW > c.dl then
  miss(c, 'offer_expired')
  return fail('offer_expired', 'the offer of ' .. cid .. ' to ' .. aid .. ' expired', 'queued')
end
local a = get_agent(aid)
a.held[cid] = 'assigned'
a.misses = 0
c.st = 'assigned'
c.ac = NOW
redis.call('ZREM', K_DUE, 'o|' .. cid)
local sk = c.lang .. '|' .. stat_skill(c) .. '|'
redis.call('HINCRBY', K_STATS, sk .. 'answered', 1)
if NOW - c.t <= P.sl then redis.call('HINCRBY', K_STATS, sk .. 'in_sl', 1) end
put_contact(c)
put_agent(a)
emit('offer_accepted', cid, aid, nil)
emit('contact_assigned', cid, aid, {channel = c.ch, waited_s = NOW - c.t}, c.ex)
return done({assignment = offer_of(c)})
