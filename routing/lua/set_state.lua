-- set_state.lua: the agent chooses offline, available or away; leaving releases open offers.
-- KEYS: the router layout (see common.lua). ARGV[1] now,
-- ARGV[2] agent id, ARGV[3] presence (offline | available | away).
local a = get_agent(ARGV[2])
if not a then return fail('unknown_agent', 'unknown agent ' .. ARGV[2]) end
local before = derive(a)
local released = {}
set_presence(a, ARGV[3], released)
put_agent(a)
state_changed(a, before)
for _, cid in ipairs(released) do match_contact(get_contact(cid)) end
a = get_agent(a.id)
match_agent(a)
return done({state = derive(a)})
