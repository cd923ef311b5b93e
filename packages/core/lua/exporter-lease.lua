--[[
  The exporter's leadership lease: one exporter of a prefix reads the lane streams and serves the
  job metrics; the others stand by. A holder extends its lease; anyone takes a lease that is free
  (never taken, released, or expired).

    KEYS[1] the lease key
    ARGV[1] the caller's id
    ARGV[2] "hold": take the lease when free or extend it when the caller holds it, for ARGV[3] ms;
            "release": delete it when the caller holds it
    ARGV[3] the lease duration in ms (hold)

  Returns 1 when the caller holds the lease after a hold, or released it; else 0.
]]
local holder = redis.call("GET", KEYS[1])
if ARGV[2] == "release" then
  if holder == ARGV[1] then
    redis.call("DEL", KEYS[1])
    return 1
  end
  return 0
end
if holder == ARGV[1] then
  redis.call("PEXPIRE", KEYS[1], ARGV[3])
  return 1
end
if holder == false then
  redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[3])
  return 1
end
return 0
