print("init file ran")
INIT = 1
