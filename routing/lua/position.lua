-- position.lua: read-only inputs of a waiting contact's position and expected wait.
-- KEYS: the router layout (see common.lua). ARGV[1] now, ARGV[2] contact id.
local cid = ARGV[2]
local c = get_contact(cid)
if not c then return fail('unknown_contact', 'unknown contact ' .. cid) end
if c.st ~= 'queued' then return done({state = c.st}) end
local rank = redis.call('ZRANK', QK[c.lang][c.ch], cid)
local prim, pmin = primary(reqs_at(c, ring_at(c)))
-- staffed agents eligible now: those the contact excludes (until their exclusion ends) are
-- counted apart, so that the estimate does not promise agents who may not take it
local staffed = redis.call('ZRANGEBYLEX', SK[c.lang], '[' .. c.ch .. '|' .. prim .. '|' .. pmin,
                           '(' .. c.ch .. '|' .. prim .. '|6')
local n, nex, until_t = 0, 0, nil
for _, m in ipairs(staffed) do
  local aid = string.match(m, '|([^|]*)$')
  if excluded(c, aid) then
    nex = nex + 1
    local ends = c.excl[aid] + P.exclttl
    if until_t == nil or ends < until_t then until_t = ends end
  else
    n = n + 1
  end
end
local times = redis.call('LRANGE', K_AHT[c.ch], 0, -1)
local sum = 0
for _, t in ipairs(times) do sum = sum + tonumber(t) end
return done({state = c.st, position = rank + 1, eligible = n, excluded = nex,
             excluded_until = until_t, aht_sum = sum, aht_n = #times})
