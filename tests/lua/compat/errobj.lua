-- Error objects of every kind, caught and uncaught.
print(pcall(error, "msg", 0))
print(pcall(error, 42))
print(select(2, pcall(error, {code = 7})).code)
local e = setmetatable({}, {__tostring = function() return "custom error" end})
print(tostring(select(2, pcall(error, e))))
print(pcall(function() local t = nil; return t.x end))
print(select("#", pcall(error)))
error(e)
