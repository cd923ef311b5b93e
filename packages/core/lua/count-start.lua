--[[
  Counts up fields of a job hash by one (a start that used no attempt), only while the job exists
  and its lock is not another's: a job removed meanwhile would come back from HINCRBY as a hash
  with only these fields, in no set and with no TTL; and a job another worker holds now keeps its
  own counts.

    KEYS[1] the job hash, "<prefix>:<lane>:<id>"
    KEYS[2] the job's lock, "<prefix>:<lane>:<id>:lock"

    ARGV[1] the lock token the worker holds the job under, or "" not to check it
    ARGV[2..] the fields to count up

  Returns 1 when counted, 0 when not.
]]
local rcall = redis.call

if ARGV[1] ~= "" and rcall("GET", KEYS[2]) ~= ARGV[1] then
  return 0
end
if rcall("EXISTS", KEYS[1]) == 0 then
  return 0
end
for i = 2, #ARGV do
  rcall("HINCRBY", KEYS[1], ARGV[i], 1)
end
return 1
