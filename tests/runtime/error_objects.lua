-- A task whose error is not a string is reported by what its __tostring
-- makes of it, or by why that failed: never as a lack of memory.
local rt = require "hakrt"
local function fail(kind)
  local mt = {}
  if kind == "tostring" then
    mt.__tostring = function() return "a custom error" end
  elseif kind == "raises" then
    mt.__tostring = function() error("tostring broke", 0) end
  elseif kind == "number" then
    mt.__tostring = function() return 42 end
  end
  error(setmetatable({}, mt))
end
local function report(kind)
  local ok, err = rt.spawn(fail, kind):join()
  assert(not ok)
  assert(not err:find("no memory left", 1, true), err)
  return err
end
local e = report("tostring")
assert(e:find("a custom error", 1, true) and e:find("stack traceback", 1, true), e)
e = report("raises")
assert(e:find("error object is a table value; its __tostring failed: tostring broke", 1, true), e)
e = report("number")
assert(e:find("error object is a table value; its __tostring returned a number", 1, true), e)
e = report("plain")
assert(e:find("(error object is a table value)", 1, true), e)
print("error_objects ok")
