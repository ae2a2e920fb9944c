-- reject.lua: the agent declines its offer: back to the original place, agent excluded, a miss.
-- KEYS: the router layout (see common.lua). ARGV[1] now,
-- ARGV[2] contact id, ARGV[3] agent id.
local cid, aid = ARGV[2], ARGV[3]
local c = get_contact(cid)
if not c then return fail('unknown_contact', 'unknown contact ' .. cid) end
if c.st ~= 'offered' or c.ag ~= aid then
  if c.excl[aid] and c.st ~= 'completed' and c.st ~= 'cancelled' and c.ag ~= aid then
    return done({state = c.st})  -- a repeated reject
  end
  return fail('invalid_state', 'contact ' .. cid .. ' is ' .. c.st .. ', not offered to ' .. aid, c.st)
end
miss(c, 'offer_rejected')
return done({state = get_contact(cid).st})
