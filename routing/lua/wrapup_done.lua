-- wrapup_done.lua: the agent finishes wrap-up early and takes work again.
-- KEYS: the router layout (see common.lua). ARGV[1] now, ARGV[2] agent id.
local a = get_agent(ARGV[2])
if not a then return fail('unknown_agent', 'unknown agent ' .. ARGV[2]) end
if a.wrap > 0 then
  local before = derive(a)
  a.wrap = 0
  became_idle(a)
  redis.call('ZREM', K_DUE, 'w|' .. a.id)
  index(a)
  put_agent(a)
  state_changed(a, before)
  match_agent(a)
end
return done({state = derive(a)})
