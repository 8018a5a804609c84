-- With --task-mem-limit, a task over its limit gets "not enough memory".
local ok, err = pcall(function()
  local t = {}
  for i = 1, 1e7 do t[i] = ("x"):rep(64) .. i end
end)
assert(not ok and tostring(err):find("not enough memory"), tostring(err))
print("limited", (require "hakrt").stats().tasks[1].limit)
