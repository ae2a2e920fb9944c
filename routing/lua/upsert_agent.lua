-- upsert_agent.lua: create or update an agent's profile, keeping its live state.
-- KEYS: the router layout (see common.lua). ARGV[1] now,
-- ARGV[2] profile JSON {id, langs, skills, cap}.
local prof = cjson.decode(ARGV[2])
local a = get_agent(prof.id)
local created = a == nil
if created then
  a = {id = prof.id, pres = 'offline', wrap = 0, held = {}, load = {text = 0, voice = 0, video = 0},
       idle = NOW, rt = {text = NOW, voice = NOW, video = NOW}, misses = 0, ix = {},
       sx = false}
else
  unindex(a)
  unstaff(a)
end
a.langs = prof.langs
a.skills = prof.skills
a.cap = prof.cap
index(a)
staff(a)
put_agent(a)
match_agent(a)
return done({created = created, state = derive(a)})
