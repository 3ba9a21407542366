import Tracer
import Report
print("loadprobe")
