-- Size errors Lua raises before the allocator is asked, caught by pcall.
print(pcall(string.rep, "x", 1 << 40, "x"))
print(pcall(string.rep, "x", 1 << 46))
local ok, err = pcall(function()
  return #table.concat({string.rep("y", 1 << 20)}, "", 1, 1) end)
print("concat", ok, err)
print(pcall(function() return #string.rep("ab", 1 << 45) end))
print("still works", #string.rep("z", 1000))
