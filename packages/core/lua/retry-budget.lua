--[[
  Per-lane retry budget over a sliding window of one-second buckets, shared by every worker
  replica: a retry is allowed while retries in the window stay below
  ratio × first attempts in the window + minimum retries for the window.
  The ratio and the minimum come in millionths (retry-allowance.ts), so the sum is made in
  integers: in floating point 0.7 × 90 is 62.99999999999999, whose floor is one retry short.

  Each bucket is a hash {f = first attempts, r = retries} that expires after the window.

  KEYS[1..N]  bucket keys, oldest first; KEYS[N] is the current second's bucket
  ARGV[1]     ratio (retries allowed per first attempt), in millionths (an integer)
  ARGV[2]     minimum retries allowed in the window, in millionths (an integer)
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
-- Exact integers below 2^53; their quotient is off an integer by at least a millionth, far more
-- than its rounding error, so the floor is the exact one.
local allowed = math.floor((tonumber(ARGV[1]) * firsts + tonumber(ARGV[2])) / 1000000)
if retries < allowed then
  local current = KEYS[#KEYS]
  rcall("HINCRBY", current, "r", 1)
  rcall("EXPIRE", current, tonumber(ARGV[3]))
  return {1, retries + 1, allowed}
end
return {0, retries, allowed}
