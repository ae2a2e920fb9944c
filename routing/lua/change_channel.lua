-- change_channel.lua: the contact changed medium inside its session (text <-> voice <-> video).
-- Queued: re-filed in the (language, new channel) queue at its stored score (same place), then
-- matched. Offered or assigned: its load moves from the old channel to the new one on its agent
-- (the offer keeps its deadline), refused when the agent could not take it on the new channel
-- (capacity, or an exclusive channel it holds), the contact itself not counted twice.
-- KEYS: the router layout (see common.lua). ARGV[1] now,
-- ARGV[2] contact id, ARGV[3] new channel (text | voice | video).
local cid, ch = ARGV[2], ARGV[3]
if not K_AHT[ch] then return fail('routing_error', 'unknown channel ' .. ch) end
local c = get_contact(cid)
if not c then return fail('unknown_contact', 'unknown contact ' .. cid) end
if c.st == 'completed' or c.st == 'cancelled' then
  return fail('invalid_state', 'contact ' .. cid .. ' is ' .. c.st, c.st)
end
local from = c.ch
if from == ch then return done({state = c.st, contact = redis.call('HGET', K_CONTACTS, cid)}) end

if c.st == 'queued' then
  redis.call('ZREM', QK[c.lang][from], cid)
  c.ch = ch
  redis.call('ZADD', QK[c.lang][ch], c.sc, cid)
  emit('contact_channel_changed', cid, nil, {from = from, to = ch, state = c.st})
  match_contact(c)
  if c.st == 'queued' then put_contact(c) end
  return done({state = c.st, contact = redis.call('HGET', K_CONTACTS, cid)})
end

local a = get_agent(c.ag)
-- the same check as an offer on the new channel (free() in common.lua), without the contact
a.load[from] = math.max(0, (a.load[from] or 0) - 1)
for _, e in ipairs(P.excl) do
  if e ~= ch and (a.load[e] or 0) > 0 then
    return fail('invalid_state', 'exclusive_channels: agent ' .. a.id .. ' holds a ' .. e ..
                ' contact, which blocks ' .. ch .. '; contact ' .. cid .. ' stays on ' .. from, c.st)
  end
end
if (a.load[ch] or 0) >= (a.cap[ch] or 0) then
  return fail('invalid_state', 'capacity: agent ' .. a.id .. ' has no free ' .. ch .. ' slot (' ..
              (a.load[ch] or 0) .. ' of ' .. (a.cap[ch] or 0) .. '); contact ' .. cid ..
              ' stays on ' .. from, c.st)
end
a.load[ch] = (a.load[ch] or 0) + 1
c.ch = ch
index(a)
put_contact(c)
put_agent(a)
emit('contact_channel_changed', cid, a.id, {from = from, to = ch, state = c.st})
-- leaving an exclusive channel, or a slot of the old one, may let the agent take more work
match_agent(a)
return done({state = c.st, contact = redis.call('HGET', K_CONTACTS, cid)})
