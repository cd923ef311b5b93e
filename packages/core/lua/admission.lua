--[[
  Admission control for one lane: grants reservations for as many of the candidate jobs as fit
  under the lane's limit, atomically with counting, so that concurrent submitters and API
  replicas can never push the backlog past maxQueueSize.

  The backlog is every job not yet started (wait + paused + delayed + prioritized) plus the
  reservations still in flight: granted but whose job has not landed yet. A reservation is
  dropped when it expires, when its job exists (it is then counted in the lists above, or it
  has already started), or when the producer releases it (ZREM) after the add.

  Reservations come in two kinds:
    - one per job (mode "ids"): the member is the job id. Used when the jobs are added one by one.
    - one per group (mode "group"): the member is "<first job id>#<granted>" in KEYS[6], standing
      for that many jobs. Used for jobs added all or nothing in one MULTI (a bulk request): Redis
      does one ZADD and one ZREM for the batch instead of one per job, and the producer sends one
      id instead of all of them. When the group's first job exists, the MULTI that added the
      group has run, so every job of the group has landed or will never land: the group is done.

  Time is the Redis server's, so API replicas with skewed clocks agree on expiry.

    KEYS[1] the lane's wait list, "<prefix>:<lane>:wait"; a job's hash is "<prefix>:<lane>:<id>"
    KEYS[2] the lane's paused list
    KEYS[3] the lane's delayed zset
    KEYS[4] the lane's prioritized zset
    KEYS[5] the lane's per-job reservations (zset: member = job id, score = expiry ms)
    KEYS[6] the lane's group reservations (zset: member = "<first job id>#<count>", score = expiry ms)

    ARGV[1] maxQueueSize
    ARGV[2] reservation time to live, ms
    ARGV[3] "ids" or "group"
    mode "ids":   ARGV[4..] job ids in order of preference; the granted ones are the leading ids
    mode "group": ARGV[4] how many jobs are wanted, ARGV[5] the id of the first of them

  Returns { granted, backlog }:
    granted  how many of the leading jobs were reserved (0 .. wanted); the rest must not be added
    backlog  the count the decision was made on (jobs + live reservations, before this call)
]]
local rcall = redis.call

local maxQueueSize = tonumber(ARGV[1])
local ttlMs = tonumber(ARGV[2])
local jobKeyPrefix = string.sub(KEYS[1], 1, -5) -- "<prefix>:<lane>:wait" without "wait"
local grouped = ARGV[3] == "group"
local wanted
if grouped then
  wanted = tonumber(ARGV[4])
else
  wanted = #ARGV - 3
end

local time = rcall("TIME")
local nowMs = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

rcall("ZREMRANGEBYSCORE", KEYS[5], "-inf", nowMs)
rcall("ZREMRANGEBYSCORE", KEYS[6], "-inf", nowMs)

-- A group member is "<first job id>#<count>": the count follows the last "#".
-- (A member without one, which bullpen never writes, stands for one job.)
local function groupOf(member)
  local at = string.find(member, "#[^#]*$")
  if not at then return member, 1 end
  return string.sub(member, 1, at - 1), tonumber(string.sub(member, at + 1)) or 1
end

local jobs = rcall("LLEN", KEYS[1]) + rcall("LLEN", KEYS[2]) + rcall("ZCARD", KEYS[3]) + rcall("ZCARD", KEYS[4])
local reserved = rcall("ZCARD", KEYS[5])
-- Groups are few: one per bulk request in flight.
local groups = rcall("ZRANGE", KEYS[6], 0, -1)
for i = 1, #groups do
  local _, count = groupOf(groups[i])
  reserved = reserved + count
end

-- A reservation whose job has landed is counted twice until its producer releases it. That only
-- errs on the safe side, so the sweep (one EXISTS per live reservation) is paid only when the
-- decision is close enough for the double count to matter.
if reserved > 0 and jobs + reserved + wanted > maxQueueSize then
  local live = rcall("ZRANGE", KEYS[5], 0, -1)
  for i = 1, #live do
    if rcall("EXISTS", jobKeyPrefix .. live[i]) == 1 then
      rcall("ZREM", KEYS[5], live[i])
      reserved = reserved - 1
    end
  end
  for i = 1, #groups do
    local first, count = groupOf(groups[i])
    if rcall("EXISTS", jobKeyPrefix .. first) == 1 then
      rcall("ZREM", KEYS[6], groups[i])
      reserved = reserved - count
    end
  end
end

local backlog = jobs + reserved
local granted = maxQueueSize - backlog
if granted > wanted then granted = wanted end
if granted < 0 then granted = 0 end

if granted > 0 and grouped then
  rcall("ZADD", KEYS[6], nowMs + ttlMs, ARGV[5] .. "#" .. granted)
  rcall("PEXPIRE", KEYS[6], ttlMs)
elseif granted > 0 then
  local expiresAt = nowMs + ttlMs
  -- ZADD in chunks: unpack() of thousands of arguments can overflow the Lua stack.
  local chunk = {}
  for i = 1, granted do
    chunk[#chunk + 1] = expiresAt
    chunk[#chunk + 1] = ARGV[3 + i]
    if #chunk >= 1000 or i == granted then
      rcall("ZADD", KEYS[5], unpack(chunk))
      chunk = {}
    end
  end
  -- The whole set disappears once its last reservation would have expired.
  rcall("PEXPIRE", KEYS[5], ttlMs)
end

return { granted, backlog }
