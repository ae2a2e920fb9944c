-- process_due.lua: handle up to ARGV[2] deadlines due by now, each exactly once (removed from
-- the due set by the one script that handles it): offer expiry (o|), wrap-up end (w|),
-- ring change / periodic re-match of a waiting contact (a|), purge of a finished contact (x|).
-- KEYS: the router layout (see common.lua). ARGV[1] now, ARGV[2] batch size.

local function handle(kind, id)
  if kind == 'o' then
    local c = get_contact(id)
    if c and c.st == 'offered' then
      if NOW - c.dl > P.late then release_late(c) else miss(c, 'offer_expired') end
    end
  elseif kind == 'w' then
    local a = get_agent(id)
    if a and a.wrap > 0 then
      local before = derive(a)
      a.wrap = 0
      became_idle(a)
      index(a)
      put_agent(a)
      state_changed(a, before)
      match_agent(a)
    end
  elseif kind == 'a' then
    local c = get_contact(id)
    if c and c.st == 'queued' then
      -- each re-check doubles the candidate window (bounded): an eligible agent anywhere in
      -- the index is found, while the hot path stays at P.wa candidates
      c.dp = math.min(2 * (c.dp or P.wa), P.wmax)
      match_contact(c)
      if c.st == 'queued' then
        schedule_age(c)
        put_contact(c)
      end
    end
  elseif kind == 'x' then
    local c = get_contact(id)
    if c and (c.st == 'completed' or c.st == 'cancelled') then
      redis.call('HDEL', K_CONTACTS, id)
    end
  end
end

local batch = tonumber(ARGV[2])
local due = redis.call('ZRANGEBYSCORE', K_DUE, '-inf', NOW, 'LIMIT', 0, batch)
local handled = 0
for _, m in ipairs(due) do
  -- an earlier item of this batch may have removed or moved this deadline: re-check it
  local at = redis.call('ZSCORE', K_DUE, m)
  if at and tonumber(at) <= NOW then
    redis.call('ZREM', K_DUE, m)
    handled = handled + 1
    handle(string.sub(m, 1, 1), string.sub(m, 3))
    flush_events()  -- each deadline handled is a decision of its own: one stream entry
  end
end
return done({processed = handled, fetched = #due})
