-- The script's arguments: arg[0], the positive indices, and `...`.
print("arg[0]", arg[0])
print("#arg", #arg)
for i = 1, #arg do print(i, arg[i]) end
print("...", select("#", ...), ...)
