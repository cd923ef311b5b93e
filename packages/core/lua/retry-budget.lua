--[[
  Per-lane retry budget over a sliding window of one-second buckets, shared by every worker
  replica: a retry is allowed while retries in the window stay below
  ratio × first attempts in the window + minimum retries for the window.

  Each bucket is a hash {f = first attempts, r = retries} that expires after the window.

  KEYS[1..N]  bucket keys, oldest first; KEYS[N] is the current second's bucket
  ARGV[1]     ratio (retries allowed per first attempt)
  ARGV[2]     minimum retries allowed in the window
  ARGV[3]     bucket TTL in seconds

  Returns {granted (1|0), retries in window after this call, retries allowed in window}
]]
local rcall = redis.call
local firsts = 0
local retries = 0
for i = 1, #KEYS do
  local values = rcall("HMGET", KEYS[i], "f", "r")
  firsts = firsts + (tonumber(values[1]) or 0)
  retries = retries + (tonumber(values[2]) or 0)
end
local allowed = math.floor(tonumber(ARGV[1]) * firsts + tonumber(ARGV[2]))
if retries < allowed then
  local current = KEYS[#KEYS]
  rcall("HINCRBY", current, "r", 1)
  rcall("EXPIRE", current, tonumber(ARGV[3]))
  return {1, retries + 1, allowed}
end
return {0, retries, allowed}
