-- cancel.lua: the customer left: remove the contact wherever it is, offer included.
-- KEYS: the router layout (see common.lua). ARGV[1] now, ARGV[2] contact id.
local cid = ARGV[2]
local c = get_contact(cid)
if not c then return fail('unknown_contact', 'unknown contact ' .. cid) end
if c.st == 'completed' or c.st == 'cancelled' then return done({state = c.st}) end
local a, before = detach(c, 'cancelled')
local was = c.st
finish(c, 'cancelled')
put_contact(c)
emit('contact_cancelled', cid, a and a.id or nil, {was = was})
if a then
  put_agent(a)
  state_changed(a, before)
  match_agent(a)
end
return done({state = c.st})
