-- os.exit with a code, a boolean, and closing the state (finalizers run).
setmetatable({}, {__gc = function() print("finalizer ran") end})
io.write("exiting with ", tostring(arg[1]), "\n")
local code = arg[1]
if code == "true" then code = true elseif code == "false" then code = false
else code = tonumber(code) end
os.exit(code, arg[2] == "close")
