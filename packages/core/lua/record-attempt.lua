--[[
  Records one finished attempt of a job in one atomic step: appends its row to the job's
  attempt history (the BullMQ log list; failed attempts only) and adds a bp:attempt entry to
  the lane's event stream, so no reader sees the event without the row.

  The row is appended only while the job exists, as BullMQ's own addLog does, so that a job
  removed meanwhile leaves no orphan log list behind.

  Nothing is recorded when the worker no longer holds the job's lock (given its token): it lost
  the lock (a paused process, a blocked event loop) and another worker has the job now, whose
  history this attempt must not write.

  The job hash's counters (a free rate-limited retry counts a start that used no attempt, and one
  of the lane's free retries) are counted in the same step, under the same two conditions: never
  on a job another worker holds, and never on a job removed meanwhile, which HINCRBY would bring
  back as a hash with only those fields, in no set and with no TTL.

    KEYS[1] the job hash, "<prefix>:<lane>:<id>"
    KEYS[2] the job's log list, "<prefix>:<lane>:<id>:logs"
    KEYS[3] the lane's event stream, "<prefix>:<lane>:events"
    KEYS[4] the job's lock, "<prefix>:<lane>:<id>:lock"

    ARGV[1] approximate maximum length of the stream (XADD MAXLEN ~)
    ARGV[2] the log row (JSON), or "" for none
    ARGV[3] keep at most this many log rows; 0 keeps all
    ARGV[4] the lock token the attempt ran under, or "" not to check it
    ARGV[5] how many job hash fields to count: N, 0 for none
    ARGV[6..5+N] those fields, each counted up by one
    ARGV[6+N..] the event's fields and values, flat

  Returns the id of the stream entry added, or false when the lock is another's.
]]
local rcall = redis.call

if ARGV[4] ~= "" and rcall("GET", KEYS[4]) ~= ARGV[4] then
  return false
end

if ARGV[2] ~= "" and rcall("EXISTS", KEYS[1]) == 1 then
  rcall("RPUSH", KEYS[2], ARGV[2])
  local keep = tonumber(ARGV[3])
  if keep > 0 then
    rcall("LTRIM", KEYS[2], -keep, -1)
  end
end

local counted = tonumber(ARGV[5])
if counted > 0 and rcall("EXISTS", KEYS[1]) == 1 then
  for i = 6, 5 + counted do
    rcall("HINCRBY", KEYS[1], ARGV[i], 1)
  end
end

local fields = {}
for i = 6 + counted, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
return rcall("XADD", KEYS[3], "MAXLEN", "~", ARGV[1], "*", unpack(fields))
