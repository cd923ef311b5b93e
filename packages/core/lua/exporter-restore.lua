--[[
  Writes back into a lane's exporter state the totals that Redis lost: Redis came back behind
  the exporter's last commits (restarted from an older RDB snapshot, an append-only file fsynced
  every second after a crash, a failover to a replica that lagged), so its saved totals are
  below the ones the exporter already served, and Prometheus would read the drop as a counter
  reset and count the lane's whole total again. Raises each total to the served one and moves
  the saved position, atomically, and only if the saved position is still the one the exporter
  just loaded (another exporter committing meanwhile gets its own state re-examined).

    KEYS[1] the lane's exporter state hash, "<prefix>:<lane>:bp:exporter"

    ARGV[1] the saved position the exporter loaded
    ARGV[2] the position to save: past the entries of the stream Redis kept that the exporter
            had already counted
    ARGV[3] entries accounted for up to that position (set, not added)
    ARGV[4] n, the number of integer field/amount pairs that follow
    ARGV[5 .. 4+2n] integer field, amount pairs (HINCRBY: what the saved total falls short by)
    ARGV[5+2n ..] float field, total pairs (HSET: the served total itself, so that the text
                  Redis keeps reads back as exactly the number served and a _sum never steps down)

  Returns 0 when the saved position had moved (nothing written), 1 when written.
]]
local rcall = redis.call
local key = KEYS[1]

local saved = rcall("HGET", key, "pos")
if (saved or "") ~= ARGV[1] then
  return 0
end

rcall("HSET", key, "pos", ARGV[2], "read", ARGV[3])

local n = tonumber(ARGV[4])
local i = 5
local lastInt = 4 + 2 * n
while i < lastInt do
  rcall("HINCRBY", key, ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i < #ARGV do
  rcall("HSET", key, ARGV[i], ARGV[i + 1])
  i = i + 2
end
return 1
