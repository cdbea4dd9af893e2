print("lowrank")
