--[[
  Reads what the exporter shows of a lane at scrape time, in one round trip and at a cost that
  does not grow with the backlog: the number of jobs in each state, the paused flag, the
  enqueue (or redrive) time of the job that has waited longest among those next in line, and the id of the
  first stream entry the exporter has not counted yet (for its lag).

  The oldest waiting job is the tail of the wait list (BullMQ pushes new jobs at the head and
  takes from the tail), of the legacy paused list, or the head of the prioritized set (the job
  that runs next there); a starving low-priority job deeper in that set is not seen.

    KEYS[1] wait list        KEYS[2] paused list (legacy)   KEYS[3] delayed zset
    KEYS[4] prioritized zset KEYS[5] active list            KEYS[6] completed zset
    KEYS[7] failed zset      KEYS[8] waiting-children zset  KEYS[9] meta hash
    KEYS[10] the lane's event stream

    ARGV[1] prefix of the lane's job hashes, "<prefix>:<lane>:"
    ARGV[2] the exporter's position in the stream (an entry id)

  Returns { wait, paused, delayed, prioritized, active, completed, failed, waitingChildren,
            pausedFlag (0|1), oldestWaitingTimestampMs (0 when none), firstUnreadId ("" when none) }
]]
local rcall = redis.call

-- When the job joined the line: its enqueue, or its last redrive from the dead letters
-- ("bp:redriven", JOB_FIELD.redrivenAt), after which it waits in line again.
local function timestampOf(jobId)
  if not jobId then
    return 0
  end
  local fields = rcall("HMGET", ARGV[1] .. jobId, "timestamp", "bp:redriven")
  return math.max(tonumber(fields[1]) or 0, tonumber(fields[2]) or 0)
end

local oldest = 0
local function consider(ts)
  if ts > 0 and (oldest == 0 or ts < oldest) then
    oldest = ts
  end
end

consider(timestampOf(rcall("LINDEX", KEYS[1], -1)))
consider(timestampOf(rcall("LINDEX", KEYS[2], -1)))
local head = rcall("ZRANGE", KEYS[4], 0, 0)
consider(timestampOf(head[1]))

local pausedFlag = 0
if rcall("HEXISTS", KEYS[9], "paused") == 1 then
  pausedFlag = 1
end

local firstUnread = ""
local unread = rcall("XRANGE", KEYS[10], "(" .. ARGV[2], "+", "COUNT", 1)
if unread[1] then
  firstUnread = unread[1][1]
end

return {
  rcall("LLEN", KEYS[1]),
  rcall("LLEN", KEYS[2]),
  rcall("ZCARD", KEYS[3]),
  rcall("ZCARD", KEYS[4]),
  rcall("LLEN", KEYS[5]),
  rcall("ZCARD", KEYS[6]),
  rcall("ZCARD", KEYS[7]),
  rcall("ZCARD", KEYS[8]),
  pausedFlag,
  oldest,
  firstUnread,
}
