-- Memory limits just above what a bare state needs: a task whose state
-- cannot be set up fails with "cannot create the task's state: not enough
-- memory" (or, a little higher, runs out loading its code), the process
-- goes on, and every limit from 15000 to 40000 bytes gives one of those or
-- a clean run.  (The runner checks that hakmem holds nothing afterwards:
-- each failed state was closed.)
local rt = require "hakrt"
local ran, refused, short = 0, 0, 0
for limit = 15000, 40000, 500 do
  local h = rt.spawn_with({limit = limit}, function() return "ran" end)
  local ok, v = h:join()
  if ok then
    assert(v == "ran", tostring(v))
    ran = ran + 1
  elseif v:find("cannot create the task's state: not enough memory", 1, true) then
    refused = refused + 1
  else
    assert(v:find("not enough memory", 1, true), v)
    short = short + 1
  end
end
-- both ends of the range are met: the test does cover the boundary
assert(ran > 0 and refused > 0, ("ran %d, refused %d"):format(ran, refused))
print("tiny_limits ok", ran, refused, short)
