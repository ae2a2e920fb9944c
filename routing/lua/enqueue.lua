-- enqueue.lua: a new contact joins its (language, channel) queue and is offered if possible.
-- KEYS: the router layout (see common.lua). ARGV[1] now,
-- ARGV[2] contact JSON {id, ch, lang, req, opt, prio, vip, t, rs, sc (string), excl}.
local c = cjson.decode(ARGV[2])
local old = get_contact(c.id)
if old and (old.st == 'queued' or old.st == 'offered' or old.st == 'assigned') then
  return fail('contact_exists', 'contact ' .. c.id .. ' is already ' .. old.st, old.st)
end
if old then redis.call('ZREM', K_DUE, 'x|' .. c.id) end
emit('contact_queued', c.id, nil, {channel = c.ch, language = c.lang, priority = c.prio, vip = c.vip})
-- try to offer before touching the queue: most contacts never wait
c.st = 'queued'
match_contact(c, true)
if c.st == 'queued' then
  to_queue(c)
  put_contact(c)
end
return done({state = c.st})
