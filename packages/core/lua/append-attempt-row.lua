--[[
  Appends one row to a job's attempt history (the BullMQ log list) without an attempt event: for
  an attempt no worker recorded, such as one lost to a stall, written by the worker that found it.
  The row is appended only while the job exists, as BullMQ's own addLog does, so that a job removed
  meanwhile leaves no orphan log list behind.

    KEYS[1] the job hash, "<prefix>:<lane>:<id>"
    KEYS[2] the job's log list, "<prefix>:<lane>:<id>:logs"

    ARGV[1] the log row (JSON)
    ARGV[2] keep at most this many log rows; 0 keeps all
    ARGV[3] optional: an attempt number. When the last row is a retry-budget deferral row
            (budgetDeferral set) of that attempt, the new row replaces it instead of being
            appended: a retry the budget keeps deferring through a long outage holds one row
            that counts its deferrals, not one row per refusal.

  Returns 1 when the row was written, 0 when the job no longer exists.
]]
local rcall = redis.call

if rcall("EXISTS", KEYS[1]) == 0 then
  return 0
end
if ARGV[3] and ARGV[3] ~= "" then
  local last = rcall("LINDEX", KEYS[2], -1)
  if last then
    local ok, row = pcall(cjson.decode, last)
    if ok and type(row) == "table" and row["budgetDeferral"] ~= nil and row["attempt"] == tonumber(ARGV[3]) then
      rcall("LSET", KEYS[2], -1, ARGV[1])
      return 1
    end
  end
end
rcall("RPUSH", KEYS[2], ARGV[1])
local keep = tonumber(ARGV[2])
if keep > 0 then
  rcall("LTRIM", KEYS[2], -keep, -1)
end
return 1
