--[[
  Records which worker holds the current start of each of several active jobs, in one call: sets
  the job hash's lease field only while the job still exists, so that a job removed in the
  meantime (removeOnComplete) is not brought back as a hash with one field.

    KEYS[1..N] the job hashes, "<prefix>:<lane>:<id>"
    ARGV[1]    the lease field name
    ARGV[2..N+1] the lease records (JSON), one per key

  Returns the number of leases written.
]]
local written = 0
for i = 1, #KEYS do
  if redis.call("EXISTS", KEYS[i]) == 1 then
    redis.call("HSET", KEYS[i], ARGV[1], ARGV[i + 1])
    written = written + 1
  end
end
return written
