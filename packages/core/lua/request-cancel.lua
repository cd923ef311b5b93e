--[[
  Marks a job as cancelled on request, so that a worker that starts it later aborts it: a worker
  reclaiming it after its own died, or one that missed the cancel message while it was not running
  it. Only while the job exists, so that a job removed meanwhile leaves no orphan hash behind.

    KEYS[1] the job hash, "<prefix>:<lane>:<id>"

    ARGV[1] the field (JOB_FIELD.cancelRequested)
    ARGV[2] its value: when the cancellation was requested, epoch ms

  Returns 1 when the job was marked, 0 when it no longer exists.
]]
if redis.call("EXISTS", KEYS[1]) == 0 then
  return 0
end
redis.call("HSET", KEYS[1], ARGV[1], ARGV[2])
return 1
