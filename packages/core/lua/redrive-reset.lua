--[[
  A redrive's own bookkeeping on a dead job, written only while the job is still in the lane's
  failed set: deletes the worker's start counts, lease, cancellation and BullMQ's stall fields, and
  stamps when it was redriven. A job that retention (removeOnFail) or a purge removed since it was
  found dead is left alone: an HSET would bring it back as a hash with one field, in no set and
  with no TTL, which nothing would ever remove.

    KEYS[1] the job hash, "<prefix>:<lane>:<id>"
    KEYS[2] the lane's failed set, "<prefix>:<lane>:failed"

    ARGV[1] the job id
    ARGV[2] the redrivenAt field (JOB_FIELD.redrivenAt)
    ARGV[3] its value: when the job was redriven, epoch ms
    ARGV[4..] the fields to delete

  Returns 1 when written, 0 when the job no longer exists, -1 when it exists but is not dead.
]]
local rcall = redis.call

if not rcall("ZSCORE", KEYS[2], ARGV[1]) then
  if rcall("EXISTS", KEYS[1]) == 1 then
    return -1
  end
  return 0
end
if rcall("EXISTS", KEYS[1]) == 0 then
  return 0
end
if #ARGV > 3 then
  rcall("HDEL", KEYS[1], unpack(ARGV, 4))
end
rcall("HSET", KEYS[1], ARGV[2], ARGV[3])
return 1
