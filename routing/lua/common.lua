-- common.lua: helpers shared by every router script; routing/scripts.py prepends it to each one.
-- KEYS (routing/keys.py RouterKeys.script_keys), the same for every script:
--   KEYS[1] agents hash, KEYS[2] contacts hash, KEYS[3] due zset, KEYS[4] events stream,
--   KEYS[5] stats hash, KEYS[6..8] handle-time lists (text, voice, video), then the queue zsets
--   of each (language, channel), then the available-agent index of each language, then the
--   staffed-agent index of each language (languages in policy order, channels text, voice, video).
-- ARGV[1] now (epoch seconds); each script's own from 2.
-- P, the policy, is defined before this file: routing/scripts.py compiles the store's policy
-- into the source as a Lua table (Policy.lua_table), so no call decodes it.
--
-- Agent index members (one ZSET per language, score 0, read lexicographically):
-- "channel|skill|level|inv_idle|agent_id|,skill:level,...," where inv_idle = 1e10 - the time
-- the agent last became idle or got a contact of that channel, zero padded: a reverse range over
-- one (channel, skill) yields the highest proficiency first, then the longest idle.
-- "channel|*|0|..." serves contacts that need no skill. An agent is indexed for (language, channel) only while it takes offers and has a
-- free slot on that channel, so a decision reads a bounded window and never scans all agents.

local NOW_S = ARGV[1]  -- as the client wrote it (repr of a float): the events' time field
local NOW = tonumber(NOW_S)
local K_AGENTS, K_CONTACTS, K_DUE, K_EVENTS, K_STATS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local CHANS = {'text', 'voice', 'video'}
local K_AHT = {text = KEYS[6], voice = KEYS[7], video = KEYS[8]}
local QK, AK, SK = {}, {}, {}
do
  local nl = #P.langs
  for li, l in ipairs(P.langs) do
    QK[l] = {}
    for ci, c in ipairs(CHANS) do QK[l][c] = KEYS[8 + (li - 1) * 3 + ci] end
    AK[l] = KEYS[8 + nl * 3 + li]
    SK[l] = KEYS[8 + nl * 4 + li]
  end
end
-- The offers made by this call, each already encoded as JSON (see make_offer and done).
local OFFERS = {}

local function num17(x) return string.format('%.17g', x) end

-- The events of the decision under way, each already encoded as JSON (see emit).
local EVENTS = {}

-- A decision's events go to the stream as one entry, {time, events: JSON list}: one XADD per
-- decision instead of one per event (routing.events.parse_entry reads it back). Called by
-- done() and fail(), and by process_due after each deadline it handles.
local function flush_events()
  if #EVENTS == 0 then return end
  redis.call('XADD', K_EVENTS, 'MAXLEN', '~', P.maxlen, '*', 'time', NOW_S,
             'events', '[' .. table.concat(EVENTS, ',') .. ']')
  EVENTS = {}
end

local function fail(code, msg, state)
  flush_events()  -- e.g. accept after the deadline: the expiry happened
  return cjson.encode({err = code, msg = msg, state = state})
end

-- A JSON object (encoded, not empty) with one more field whose value is already JSON: an
-- explanation or the offers, encoded once and spliced in as is rather than re-encoded.
local function with_json(obj, name, value)
  return string.sub(obj, 1, -2) .. ',"' .. name .. '":' .. value .. '}'
end

local function done(t)
  flush_events()
  t.ok = true
  local reply = cjson.encode(t)
  if #OFFERS == 0 then return reply end
  return with_json(reply, 'offers', '[' .. table.concat(OFFERS, ',') .. ']')
end

-- One event of the decision: {type, contact_id?, agent_id?, data?, explanation?}.
-- ex: an explanation already encoded as JSON (encoded once per decision), spliced in as is.
local function emit(etype, cid, aid, data, ex)
  local e = cjson.encode({type = etype, contact_id = cid, agent_id = aid, data = data})
  if ex then e = with_json(e, 'explanation', ex) end
  EVENTS[#EVENTS + 1] = e
end

local function get_agent(aid)
  local s = redis.call('HGET', K_AGENTS, aid)
  if not s then return nil end
  return cjson.decode(s)
end

local function put_agent(a) redis.call('HSET', K_AGENTS, a.id, cjson.encode(a)) end

local function get_contact(cid)
  local s = redis.call('HGET', K_CONTACTS, cid)
  if not s then return nil end
  return cjson.decode(s)
end

local function put_contact(c) redis.call('HSET', K_CONTACTS, c.id, cjson.encode(c)) end

-- Free slots on a channel; a held exclusive channel (voice, video) blocks the others.
local function free(a, ch)
  for _, e in ipairs(P.excl) do
    if e ~= ch and (a.load[e] or 0) > 0 then return 0 end
  end
  return (a.cap[ch] or 0) - (a.load[ch] or 0)
end

local function takes(a) return a.pres == 'available' and a.wrap == 0 end

-- c.excl[agent] is when the agent missed the contact: excluded for P.exclttl seconds from then
-- (``true``, as stored before exclusions ended, counts as long past).
local function excluded(c, aid)
  local t = c.excl[aid]
  return type(t) == 'number' and NOW - t < P.exclttl
end

local function derive(a)
  if a.pres ~= 'available' then return a.pres end
  if a.wrap > 0 then return 'wrap_up' end
  if next(a.held) ~= nil then return 'busy' end
  return 'available'
end

-- ``why`` (optional): more fields of the event, e.g. {reason = 'missed_offers', misses = 3}.
local function state_changed(a, before, why)
  local after = derive(a)
  if after ~= before then
    local data = {from = before, to = after}
    for k, v in pairs(why or {}) do data[k] = v end
    emit('agent_state_changed', nil, a.id, data)
  end
end

-- inv_idle of each time seen by this call: the agents' channels mostly share a few times.
local INV = {}
local function inv_idle(t)
  local s = INV[t]
  if not s then
    s = string.format('%015.3f', 1e10 - t)
    INV[t] = s
  end
  return s
end

-- Levels as text without a number-to-string conversion (levels are 1-5; 0 for '*').
local DIGIT = {[0] = '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'}

-- The skill parts of an agent's members, built once per call for a skills table: the heads
-- "skill|level" (sorted, then "*|0") and the tail ",skill:level,...,".
local MPARTS = {}
local function member_parts(a)
  local mp = MPARTS[a.skills]
  if mp then return mp end
  local names = {}
  for s in pairs(a.skills) do names[#names + 1] = s end
  table.sort(names)
  local heads, tail = {}, {}
  for i, s in ipairs(names) do
    local lv = a.skills[s]
    lv = DIGIT[lv] or tostring(lv)
    heads[i] = '|' .. s .. '|' .. lv
    tail[i] = s .. ':' .. lv
  end
  heads[#heads + 1] = '|*|0'
  mp = {heads = heads, tail = '|,' .. table.concat(tail, ',') .. ','}
  MPARTS[a.skills] = mp
  return mp
end

-- The member tail ",skill:level,...," (sorted) lets a decision check the other skills of a
-- candidate without reading the agent.
local function members(a, ch, inv, out)
  local mp = member_parts(a)
  local rest = '|' .. inv .. '|' .. a.id .. mp.tail
  for _, h in ipairs(mp.heads) do out[#out + 1] = ch .. h .. rest end
  return out
end

-- a.ix maps each indexed channel to the inv_idle its members carry (in every agent language).
local function unindex(a)
  local ms = {}
  for ch, inv in pairs(a.ix) do members(a, ch, inv, ms) end
  if #ms > 0 then
    for _, l in ipairs(a.langs) do
      if AK[l] then redis.call('ZREM', AK[l], unpack(ms)) end
    end
  end
  a.ix = {}
end

-- Bring the agent's available-index entries in line with its state, touching only the
-- channels whose entries change. a.rt[channel] orders the agent within a channel.
local function index(a)
  local want = {}
  if takes(a) then
    for _, ch in ipairs(CHANS) do
      if free(a, ch) > 0 then want[ch] = inv_idle(a.rt[ch]) end
    end
  end
  local rem, add = {}, {}
  for ch, inv in pairs(a.ix) do
    if want[ch] ~= inv then members(a, ch, inv, rem) end
  end
  for ch, inv in pairs(want) do
    if a.ix[ch] ~= inv then members(a, ch, inv, add) end
  end
  if #rem > 0 or #add > 0 then
    local zadd = {}
    for _, m in ipairs(add) do
      zadd[#zadd + 1] = 0
      zadd[#zadd + 1] = m
    end
    for _, l in ipairs(a.langs) do
      if AK[l] then
        if #rem > 0 then redis.call('ZREM', AK[l], unpack(rem)) end
        if #zadd > 0 then redis.call('ZADD', AK[l], unpack(zadd)) end
      end
    end
  end
  a.ix = want
end

-- The agent has nothing to do from now: every channel orders it from now.
local function became_idle(a)
  a.idle = NOW
  a.rt = {text = NOW, voice = NOW, video = NOW}
end

local function staff_members(a)
  local ms = {}
  for _, ch in ipairs(CHANS) do
    if (a.cap[ch] or 0) > 0 then
      for sk, lv in pairs(a.skills) do ms[#ms + 1] = ch .. '|' .. sk .. '|' .. lv .. '|' .. a.id end
      ms[#ms + 1] = ch .. '|*|0|' .. a.id
    end
  end
  return ms
end

local function unstaff(a)
  if a.sx then
    local ms = staff_members(a)
    if #ms > 0 then
      for _, l in ipairs(a.langs) do
        if SK[l] then redis.call('ZREM', SK[l], unpack(ms)) end
      end
    end
  end
  a.sx = false
end

-- (Re)build the staffed index: logged-in agents, whatever their load (for the EWT estimate).
local function staff(a)
  unstaff(a)
  if a.pres ~= 'available' then return end
  local zargs = {}
  for _, m in ipairs(staff_members(a)) do
    zargs[#zargs + 1] = 0
    zargs[#zargs + 1] = m
  end
  if #zargs > 0 then
    for _, l in ipairs(a.langs) do
      if SK[l] then redis.call('ZADD', SK[l], unpack(zargs)) end
    end
  end
  a.sx = true
end

-- Bullseye ring in force: P.rings are cumulative (lower = total lowering, drop = optional dropped).
local function ring_at(c)
  local w = NOW - c.rs
  local r = 0
  for i, step in ipairs(P.rings) do
    if w >= step.after then r = i end
  end
  return r
end

local function reqs_at(c, r)
  local lower, drop = 0, false
  if r > 0 then lower = P.rings[r].lower; drop = P.rings[r].drop end
  local out = {}
  for s, m in pairs(c.req) do out[s] = math.max(1, m - lower) end
  if not drop then
    for s, m in pairs(c.opt) do
      local v = math.max(1, m - lower)
      if (out[s] or 0) < v then out[s] = v end
    end
  end
  return out
end

local function meets(a, rq)
  for s, m in pairs(rq) do
    if (a.skills[s] or 0) < m then return false end
  end
  return true
end

local function primary(rq)
  local best, bm = nil, -1
  for s, m in pairs(rq) do
    if m > bm or (m == bm and s < best) then best, bm = s, m end
  end
  if not best then return '*', 0 end
  return best, bm
end

local function stat_skill(c)
  local best = nil
  for s in pairs(c.req) do
    if best == nil or s < best then best = s end
  end
  return best or 'general'
end

local function parts(a, c)
  local fr, fo = 0, 0
  for s in pairs(c.req) do fr = fr + (a.skills[s] or 0) end
  for s in pairs(c.opt) do fo = fo + (a.skills[s] or 0) end
  return fr, fo
end

-- Rank: highest fit, then longest idle (smallest last_idle = largest inv_idle string, all of
-- one width), then the larger id.
local function better(x, y)
  if x.fit ~= y.fit then return x.fit > y.fit end
  if x.inv ~= y.inv then return x.inv > y.inv end
  return x.id > y.id
end


-- A waiting contact is re-matched when its next ring starts, and at least every P.recheck s.
local function schedule_age(c)
  local t = NOW + P.recheck
  local nxt = P.rings[ring_at(c) + 1]
  if nxt and c.rs + nxt.after < t then t = c.rs + nxt.after end
  -- and when an exclusion ends: that agent may take it from then
  for _, at in pairs(c.excl) do
    if type(at) == 'number' then
      local ends = at + P.exclttl
      if ends > NOW and ends < t then t = ends end
    end
  end
  redis.call('ZADD', K_DUE, t, 'a|' .. c.id)
end

-- Put a contact (back) in its queue at its stored score: its original place.
local function to_queue(c)
  c.st = 'queued'
  c.ag = nil; c.of = nil; c.dl = nil; c.ac = nil; c.ex = nil
  redis.call('ZADD', QK[c.lang][c.ch], c.sc, c.id)
  redis.call('ZREM', K_DUE, 'o|' .. c.id)
  schedule_age(c)
end

-- new: a contact being enqueued, not yet in its queue nor in `due` (nothing to remove there).
local function make_offer(c, a, explanation, new)
  local expl = cjson.encode(explanation)
  local before = derive(a)
  if not new then
    redis.call('ZREM', QK[c.lang][c.ch], c.id)
    redis.call('ZREM', K_DUE, 'a|' .. c.id)
  end
  c.st = 'offered'; c.ag = a.id; c.of = NOW; c.dl = NOW + P.timeout; c.ex = expl; c.dp = nil
  a.held[c.id] = 'offered'
  a.load[c.ch] = (a.load[c.ch] or 0) + 1
  a.rt[c.ch] = NOW
  index(a)
  put_contact(c)
  put_agent(a)
  redis.call('ZADD', K_DUE, c.dl, 'o|' .. c.id)
  emit('offer_created', c.id, a.id, {channel = c.ch, deadline = c.dl}, expl)
  state_changed(a, before)
  OFFERS[#OFFERS + 1] = with_json(cjson.encode({contact_id = c.id, agent_id = a.id,
                                                channel = c.ch, offered_at = NOW,
                                                deadline = c.dl}), 'explanation', expl)
end

local function entry(x)
  return {agent_id = x.id, fit_required = x.fr, fit_optional = x.fo, idle_s = x.idle_s}
end

-- A skill's level in a member's tail (0 when absent). Plain finds, no patterns: a Lua pattern
-- costs several times more per member. from: where the tail starts.
local function tail_level(m, key, from)
  local i = string.find(m, key, from, true)
  if not i then return 0 end
  return string.byte(m, i + #key) - 48
end

-- Offer a queued contact to the best agent of the candidate window, if any is eligible.
-- The window is P.wa agents on the hot path; a waiting contact's re-checks widen it (c.dp).
-- new: the contact is being enqueued (see make_offer).
local function match_contact(c, new)
  if c.st ~= 'queued' then return end
  local r = ring_at(c)
  local rq = reqs_at(c, r)
  local prim, pmin = primary(rq)
  local nreq = 0
  for _ in pairs(rq) do nreq = nreq + 1 end
  -- one skill, no optional skills: the index order is the rank order, no tail to read
  local fast = nreq <= 1 and next(c.opt) == nil
  local keys = {}  -- ",skill:" of each skill the contact names, searched in member tails
  if not fast then
    for s in pairs(rq) do keys[s] = ',' .. s .. ':' end
    for s in pairs(c.req) do keys[s] = keys[s] or ',' .. s .. ':' end
    for s in pairs(c.opt) do keys[s] = keys[s] or ',' .. s .. ':' end
  end
  local head = c.ch .. '|' .. prim .. '|'
  local ms = redis.call('ZREVRANGEBYLEX', AK[c.lang], '(' .. head .. '6', '[' .. head .. pmin,
                        'LIMIT', 0, c.dp or P.wa)
  local top, considered = {}, 0
  -- every member starts with head then "level|inv_idle|agent|,tail": the level is one digit
  local at_inv = #head + 3
  for _, m in ipairs(ms) do
    local bar = string.find(m, '|', at_inv, true)
    local inv = string.sub(m, at_inv, bar - 1)
    local tail = string.find(m, '|', bar + 1, true)
    local aid = string.sub(m, bar + 1, tail - 1)
    if not excluded(c, aid) then
      local cand = nil
      if fast then
        local f = string.byte(m, at_inv - 2) - 48
        cand = {fit = f, fr = f, fo = 0, inv = inv, id = aid}
      else
        local ok = true
        for s, min in pairs(rq) do
          if tail_level(m, keys[s], tail) < min then ok = false; break end
        end
        if ok then
          local fr, fo = 0, 0
          for s in pairs(c.req) do fr = fr + tail_level(m, keys[s], tail) end
          for s in pairs(c.opt) do fo = fo + tail_level(m, keys[s], tail) end
          cand = {fit = fr + fo, fr = fr, fo = fo, inv = inv, id = aid}
        end
      end
      if cand then
        considered = considered + 1
        local pos = #top + 1
        while pos > 1 and better(cand, top[pos - 1]) do pos = pos - 1 end
        if pos <= 5 then
          table.insert(top, pos, cand)
          if #top > 5 then table.remove(top) end
        end
        if fast and #top >= 5 then break end
      end
    end
  end
  if #top == 0 then return end
  local a = get_agent(top[1].id)
  if not (a and takes(a) and free(a, c.ch) > 0) then
    flush_events()  -- a script is not rolled back: what it did so far stays, and so do its events
    error('routing index out of date for agent ' .. top[1].id)
  end
  local cands = {}
  for i, x in ipairs(top) do
    x.idle_s = NOW - (1e10 - tonumber(x.inv))
    cands[i] = entry(x)
  end
  cands[1].idle_s = NOW - a.rt[c.ch]
  make_offer(c, a, {trigger = 'contact', ring = r, considered = considered,
                    winner = cands[1], candidates = cands}, new)
end

-- Offer an agent with free capacity the best contacts it can serve, until full or none left.
local function match_agent(a)
  for _ = 1, 64 do
    if not (a and takes(a)) then return end
    local best, bsc, bring, considered = nil, nil, 0, 0
    for _, l in ipairs(a.langs) do
      if QK[l] then
        for _, ch in ipairs(CHANS) do
          if free(a, ch) > 0 then
            local items = redis.call('ZRANGE', QK[l][ch], 0, P.wc - 1, 'WITHSCORES')
            for i = 1, #items, 2 do
              local cid, sc = items[i], tonumber(items[i + 1])
              if best and (sc > bsc or (sc == bsc and cid > best.id)) then break end
              considered = considered + 1
              local c = get_contact(cid)
              if not excluded(c, a.id) then
                local r = ring_at(c)
                if meets(a, reqs_at(c, r)) then
                  best, bsc, bring = c, sc, r
                  break
                end
              end
            end
          end
        end
      end
    end
    if not best then return end
    local fr, fo = parts(a, best)
    local w = entry({id = a.id, fr = fr, fo = fo, idle_s = NOW - a.rt[best.ch]})
    make_offer(best, a, {trigger = 'agent', ring = bring, considered = considered,
                         winner = w, candidates = {w}})
  end
end

local function free_slot(a, c)
  a.held[c.id] = nil
  a.load[c.ch] = math.max(0, (a.load[c.ch] or 0) - 1)
  if next(a.held) == nil then became_idle(a) end
end

-- Change the agent's chosen presence; offline/away release open offers into `released`.
local function set_presence(a, pres, released)
  if pres ~= 'available' then
    local ids = {}
    for cid, how in pairs(a.held) do
      if how == 'offered' then ids[#ids + 1] = cid end
    end
    table.sort(ids)
    for _, cid in ipairs(ids) do
      local c = get_contact(cid)
      free_slot(a, c)
      to_queue(c)
      put_contact(c)
      emit('offer_released', c.id, a.id, {reason = pres})
      emit('contact_requeued', c.id, nil, {reason = 'offer_released'})
      released[#released + 1] = c.id
    end
    if a.wrap > 0 then
      a.wrap = 0
      redis.call('ZREM', K_DUE, 'w|' .. a.id)
    end
  elseif a.pres ~= 'available' then
    a.misses = 0
    became_idle(a)
  end
  a.pres = pres
  index(a)
  staff(a)
end

-- A rejected or expired offer: the contact goes back to its place, that agent excluded.
local function miss(c, etype)
  local a = get_agent(c.ag)
  local before = derive(a)
  free_slot(a, c)
  c.excl[a.id] = NOW
  to_queue(c)
  put_contact(c)
  a.misses = a.misses + 1
  emit(etype, c.id, a.id, {misses = a.misses})
  emit('contact_requeued', c.id, nil, {reason = etype})
  local released = {c.id}
  if a.misses >= P.misses then set_presence(a, 'away', released) else index(a) end
  put_agent(a)
  local why = nil
  if a.pres == 'away' then why = {reason = 'missed_offers', misses = a.misses} end
  state_changed(a, before, why)
  for _, cid in ipairs(released) do match_contact(get_contact(cid)) end
  match_agent(get_agent(a.id))
end

-- An offer that expired while nobody could act on it (Redis or every instance down): back to
-- its place and matched again, no exclusion, no miss.
local function release_late(c)
  local a = get_agent(c.ag)
  local before = derive(a)
  free_slot(a, c)
  to_queue(c)
  put_contact(c)
  emit('offer_released', c.id, a.id, {reason = 'late'})
  emit('contact_requeued', c.id, nil, {reason = 'offer_released'})
  index(a)
  put_agent(a)
  state_changed(a, before)
  match_contact(get_contact(c.id))
  match_agent(get_agent(a.id))
end

-- An assigned contact leaves the agent: wrap-up if it now holds nothing.
local function end_work(a, c)
  free_slot(a, c)
  if a.pres == 'available' and next(a.held) == nil and P.wrapup > 0 then
    a.wrap = NOW + P.wrapup
    redis.call('ZADD', K_DUE, a.wrap, 'w|' .. a.id)
  end
  index(a)
end

local function finish(c, st)
  c.st = st
  c.fin = NOW
  redis.call('ZREM', K_DUE, 'o|' .. c.id, 'a|' .. c.id)
  redis.call('ZADD', K_DUE, NOW + P.retain, 'x|' .. c.id)
end

-- Take a contact out of wherever it is: its queue, an open offer (released, with ``reason``)
-- or an agent's work. Returns the agent that held it and that agent's state before, or nil.
local function detach(c, reason)
  if c.st == 'queued' then
    redis.call('ZREM', QK[c.lang][c.ch], c.id)
    return nil, nil
  end
  local a = get_agent(c.ag)
  local before = derive(a)
  if c.st == 'offered' then
    free_slot(a, c)
    index(a)
    emit('offer_released', c.id, a.id, {reason = reason})
  else
    end_work(a, c)
  end
  return a, before
end

local function offer_of(c)
  return {contact_id = c.id, agent_id = c.ag, channel = c.ch, offered_at = c.of,
          deadline = c.dl, accepted_at = c.ac, explanation = c.ex}
end
