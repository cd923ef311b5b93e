--[[
  Reads what the exporter shows of a lane at scrape time, in one round trip and at a cost that
  does not grow with the backlog: the number of jobs in each state, the paused flag, the
  time the job that has waited longest among those next in line became eligible to run, the id of the
  first stream entry the exporter has not counted yet, and the server's time (for its lag: stream
  ids are written on this server's clock, so the lag is measured on it, not the exporter's).

  The oldest waiting job is the tail of the wait list (BullMQ pushes new jobs at the head and
  takes from the tail), of the legacy paused list, or the head of the prioritized set (the job
  that runs next there); a starving low-priority job deeper in that set is not seen.

    KEYS[1] wait list        KEYS[2] paused list (legacy)   KEYS[3] delayed zset
    KEYS[4] prioritized zset KEYS[5] active list            KEYS[6] completed zset
    KEYS[7] failed zset      KEYS[8] waiting-children zset  KEYS[9] meta hash
    KEYS[10] the lane's event stream

    ARGV[1] prefix of the lane's job hashes, "<prefix>:<lane>:"
    ARGV[2] the exporter's position in the stream (an entry id)
    ARGV[3] suffix of a job's log list after its hash key, ":logs" (its attempt rows)

  Returns { wait, paused, delayed, prioritized, active, completed, failed, waitingChildren,
            pausedFlag (0|1), oldestWaitingTimestampMs (0 when none), firstUnreadId ("" when none),
            serverTimeMs }

  Reading the last few log rows of at most three jobs keeps the cost constant.
]]
local rcall = redis.call

-- How many of a job's last log rows are read for its last attempt row (as the worker reads them,
-- job-history.ts LAST_ROWS_READ): enough to pass over the rows of a few stalls in a row.
local LAST_ROWS_READ = 4

-- When the job became eligible to run, as the worker's eligibleAt() (job-history.ts) reckons
-- the wait: its enqueue plus its delay (BullMQ zeroes the hash's `delay` field once the job is
-- promoted, so the delay is read from its opts), its last redrive from the dead letters
-- ("bp:redriven", JOB_FIELD.redrivenAt), or the end of the backoff chosen after its last failed
-- attempt (that attempt row's ts plus its delayMs; rows of stalls chose no delay and are passed
-- over), whichever is latest. Time spent delayed or backing off is not time waiting in line.
local function eligibleAt(jobId)
  if not jobId then
    return 0
  end
  local jobKey = ARGV[1] .. jobId
  local fields = rcall("HMGET", jobKey, "timestamp", "bp:redriven", "opts")
  local at = tonumber(fields[1]) or 0
  if at == 0 then
    return 0
  end
  if fields[3] then
    local ok, opts = pcall(cjson.decode, fields[3])
    if ok and type(opts) == "table" then
      at = at + (tonumber(opts["delay"]) or 0)
    end
  end
  at = math.max(at, tonumber(fields[2]) or 0)
  local rows = rcall("LRANGE", jobKey .. ARGV[3], -LAST_ROWS_READ, -1)
  for i = #rows, 1, -1 do
    local ok, row = pcall(cjson.decode, rows[i])
    if ok and type(row) == "table" and row["type"] == "attempt" and row["errorClass"] ~= "stalled" then
      local ts = tonumber(row["ts"])
      if ts then
        at = math.max(at, ts + (tonumber(row["delayMs"]) or 0))
      end
      break
    end
  end
  return at
end

local oldest = 0
local function consider(ts)
  if ts > 0 and (oldest == 0 or ts < oldest) then
    oldest = ts
  end
end

consider(eligibleAt(rcall("LINDEX", KEYS[1], -1)))
consider(eligibleAt(rcall("LINDEX", KEYS[2], -1)))
local head = rcall("ZRANGE", KEYS[4], 0, 0)
consider(eligibleAt(head[1]))

local pausedFlag = 0
if rcall("HEXISTS", KEYS[9], "paused") == 1 then
  pausedFlag = 1
end

local firstUnread = ""
local unread = rcall("XRANGE", KEYS[10], "(" .. ARGV[2], "+", "COUNT", 1)
if unread[1] then
  firstUnread = unread[1][1]
end
local time = rcall("TIME")

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
  tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000),
}
