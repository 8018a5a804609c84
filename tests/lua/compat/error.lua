-- An uncaught runtime error: traceback on stderr, exit status 1.
local function inner(x) return x.field.missing end
local function outer() return inner({}) end
print("before")
outer()
print("never")
