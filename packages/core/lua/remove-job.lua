--[[
  Removes a job in one of the states the caller names, as BullMQ's removeJob would, but keeps its
  idempotency key (BullMQ's deduplication key, which names the job until it expires): BullMQ's
  removal deletes that key, and a client repeating a submission after its job was cancelled or
  purged would then add the work again within idempotencyTtlMs. The state is read and the job
  removed in one step, so no worker can take the job, and no submission can take the key, between
  the two. A cancel also marks a job it finds active, in the same step, so that only a job that is
  running when the cancel is decided is ever marked.

  A job linked to other jobs (a parent or children of a BullMQ flow, or a job scheduler's job:
  bullpen makes none, plain BullMQ producers may) is left to BullMQ's removal, which keeps the
  others consistent.

    KEYS[1] the job hash, "<prefix>:<lane>:<id>"
    KEYS[2] its log list
    KEYS[3] its lock
    KEYS[4..7] its children's keys (dependencies, processed, failed, unsuccessful)
    KEYS[8] the lane's wait list
    KEYS[9] the lane's paused list
    KEYS[10] the lane's delayed set
    KEYS[11] the lane's prioritized set
    KEYS[12] the lane's waiting-children set
    KEYS[13] the lane's active list
    KEYS[14] the lane's completed set
    KEYS[15] the lane's failed set
    KEYS[16] the lane's event stream

    ARGV[1] the job id
    ARGV[2] the event stream's approximate maximum length
    ARGV[3] a field to set on the job when it is active (JOB_FIELD.cancelRequested), or "" for none
    ARGV[4] its value: when the cancellation was requested, epoch ms
    ARGV[5..] the states the job may be removed in: waiting, delayed, prioritized,
              waiting-children, completed, failed (an active job is never removed)

  Returns {outcome, state}, state being the job's as the API names it:
    {"removed", state}    removed; a "removed" event was added to the stream
    {"kept", state}       in a state not named (an active job marked with ARGV[3] if given)
    {"linked", state}     in a state named, but linked to other jobs: nothing was changed
    {"not_found", ""}     no such job, or one in no state
]]
local rcall = redis.call
local jobKey = KEYS[1]
local jobId = ARGV[1]

if rcall("EXISTS", jobKey) == 0 then
  return {"not_found", ""}
end

-- The state as the API names it, BullMQ's name for it in a "removed" event, and where the id is.
local state, prev, from, isList
if rcall("ZSCORE", KEYS[14], jobId) then
  state, prev, from = "completed", "completed", KEYS[14]
elseif rcall("ZSCORE", KEYS[15], jobId) then
  state, prev, from = "failed", "failed", KEYS[15]
elseif rcall("EXISTS", KEYS[3]) == 1 or rcall("LPOS", KEYS[13], jobId) then
  -- A worker holds it, or took it and lost its lock: a stalled job stays active until the stall
  -- checker moves it. The mark reaches a worker that starts it again after that.
  if ARGV[3] ~= "" then
    rcall("HSET", jobKey, ARGV[3], ARGV[4])
  end
  return {"kept", "active"}
elseif rcall("ZSCORE", KEYS[10], jobId) then
  state, prev, from = "delayed", "delayed", KEYS[10]
elseif rcall("ZSCORE", KEYS[11], jobId) then
  state, prev, from = "prioritized", "prioritized", KEYS[11]
elseif rcall("ZSCORE", KEYS[12], jobId) then
  state, prev, from = "waiting-children", "waiting-children", KEYS[12]
elseif rcall("LPOS", KEYS[8], jobId) then
  state, prev, from, isList = "waiting", "wait", KEYS[8], true
elseif rcall("LPOS", KEYS[9], jobId) then
  state, prev, from, isList = "waiting", "paused", KEYS[9], true
else
  return {"not_found", ""}
end

local removable = false
for i = 5, #ARGV do
  if ARGV[i] == state then
    removable = true
  end
end
if not removable then
  return {"kept", state}
end

local linked = rcall("HMGET", jobKey, "parentKey", "rjk")
if linked[1] or linked[2] or rcall("EXISTS", KEYS[4], KEYS[5], KEYS[6], KEYS[7]) > 0 then
  return {"linked", state}
end

if isList then
  rcall("LREM", from, 1, jobId)
else
  rcall("ZREM", from, jobId)
end
-- The deduplication key ("<prefix>:<lane>:de:<id>") is left as it is, with its expiry.
rcall("DEL", jobKey, KEYS[2])
rcall("XADD", KEYS[16], "MAXLEN", "~", ARGV[2], "*", "event", "removed", "jobId", jobId, "prev", prev)
return {"removed", state}
