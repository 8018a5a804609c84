-- Finalizers that print, run at collection and at close, in Lua's order.
local mt = {__gc = function(o) print("gc", o.id) end}
for i = 1, 5 do setmetatable({id = i}, mt) end
collectgarbage()
keep = {}
for i = 6, 12 do keep[i] = setmetatable({id = i}, mt) end
local tbc <close> = setmetatable({}, {__close = function() print("closed tbc") end})
print("end of script")
