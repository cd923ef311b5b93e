--[[
  Commits one batch of the exporter's counting for a lane: adds the batch's deltas to the
  persisted totals and moves the saved stream position, atomically, and only if the saved
  position is still the one the batch was read from. After a crash the exporter resumes from
  the saved position with the saved totals, so no entry is counted twice or skipped; a second
  exporter racing on the same lane gets a conflict instead of counting the batch again.

    KEYS[1] the lane's exporter state hash, "<prefix>:<lane>:bp:exporter"

    ARGV[1] the position the batch was read after ("" when no state was saved yet)
    ARGV[2] the new position: the id of the batch's last entry
    ARGV[3] entries accounted for by the batch (read, plus any found lost)
    ARGV[4] the committing exporter's writer id, saved with the position: a commit sent again after
            its reply was lost finds the position moved by itself, not by another exporter
    ARGV[5] n, the number of integer field/delta pairs
    ARGV[6] m, the number of fields to stamp
    ARGV[7 .. 6+2n] integer field, delta pairs (HINCRBY)
    ARGV[7+2n .. 6+2n+m] fields set to this server's time, in Unix seconds (when events were lost)
    ARGV[7+2n+m ..] float field, delta pairs (HINCRBYFLOAT)

  Returns 0 when the saved position had moved (nothing written); when committed, { 1, the new
  total of each float field as Redis keeps it, in the order given, then the time stamped when
  m > 0 }. HINCRBYFLOAT stores its result as text that reads back as a slightly different double
  than the exporter's own sum of the same deltas: the exporter adopts these totals, so that what
  it serves is what a restart reloads, and a histogram's _sum never goes down across a restart.
  The time is Redis's, the clock the lane streams' ids are written with, not the exporter's.
]]
local rcall = redis.call
local key = KEYS[1]

local saved = rcall("HGET", key, "pos")
if (saved or "") ~= ARGV[1] then
  return 0
end

rcall("HSET", key, "pos", ARGV[2], "writer", ARGV[4])
rcall("HINCRBY", key, "read", ARGV[3])

local n = tonumber(ARGV[5])
local m = tonumber(ARGV[6])
local i = 7
local lastInt = 6 + 2 * n
while i < lastInt do
  rcall("HINCRBY", key, ARGV[i], ARGV[i + 1])
  i = i + 2
end
local now
if m > 0 then
  local t = rcall("TIME")
  -- As text: a Lua number in a reply is cut to an integer.
  now = string.format("%d.%03d", tonumber(t[1]), math.floor(tonumber(t[2]) / 1000))
  for _ = 1, m do
    rcall("HSET", key, ARGV[i], now)
    i = i + 1
  end
end
local totals = { 1 }
while i < #ARGV do
  totals[#totals + 1] = rcall("HINCRBYFLOAT", key, ARGV[i], ARGV[i + 1])
  i = i + 2
end
if now then
  totals[#totals + 1] = now
end
return totals
