#!/usr/bin/env python3
"""Compile the engine's CUDA kernels with NVRTC for sm_90 (as `Device::new` does) and assemble them
with ptxas, on a machine without a GPU. Catches syntax, header and register-spill problems before
GPU time is spent. Needs NVRTC, the CUDA headers and ptxas from PyPI:

    pip install --target /tmp/cuda_py nvidia-cuda-nvrtc-cu12 nvidia-cuda-runtime-cu12 nvidia-cuda-nvcc-cu12
    python3 scripts/check_kernels.py [--root /tmp/cuda_py] [--arch sm_90]

ENERGY_FIT_NVRTC_OPTS (e.g. "-lineinfo") is passed to NVRTC as the engine passes it. Hopper compiles
for sm_90a (its hd-64, hd-80 and hd-128 prefill kernel is attention_ws.cu, hd 256's attention_ws256.cu):
--arch sm_90a checks that build.
ptxas's wgmma serialization warnings (C7510-C7520) are printed. A refactor that must leave the
compiled code unchanged: --ptx-out before and after, for sm_90a, sm_90 and sm_80, and compare the
files (lines other than `.global` constants).
"""
import argparse, ctypes, glob, os, re, subprocess, sys, tempfile

ap = argparse.ArgumentParser()
ap.add_argument("--root", default="/tmp/cuda_py", help="pip --target directory holding the nvidia packages")
ap.add_argument("--arch", default="sm_90")
ap.add_argument("--ptx-out", help="also write the PTX here (to check that a refactor leaves the compiled code unchanged)")
args = ap.parse_args()
here = os.path.dirname(os.path.abspath(__file__))
kdir = os.path.join(here, "..", "src", "engine", "kernels")
libs = glob.glob(os.path.join(args.root, "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so*"))
include = os.path.join(args.root, "nvidia", "cuda_runtime", "include")
if not libs or not os.path.exists(os.path.join(include, "cuda_bf16.h")):
    sys.exit(f"NVRTC or CUDA headers not under {args.root}; see this script's docstring")
lib = ctypes.CDLL(sorted(libs)[0])
# Device::new compiles these as one program, in the order of device.rs's KERNEL_SOURCES.
files = re.findall(r'include_str!\("kernels/(\w+\.cu)"\)', open(os.path.join(here, "..", "src", "engine", "device.rs")).read())
src = "\n".join(open(os.path.join(kdir, f)).read() for f in files)
prog = ctypes.c_void_p()
assert lib.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), b"engine.cu", 0, None, None) == 0
extra = os.environ.get("ENERGY_FIT_NVRTC_OPTS", "").split()
opts = [f"--gpu-architecture={args.arch}".encode(), b"-std=c++17", f"--include-path={include}".encode()] + [o.encode() for o in extra]
rc = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
n = ctypes.c_size_t()
lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
log = ctypes.create_string_buffer(n.value)
lib.nvrtcGetProgramLog(prog, log)
if log.value.strip():
    print(log.value.decode())
if rc != 0:
    sys.exit(f"NVRTC failed (code {rc})")
lib.nvrtcGetPTXSize(prog, ctypes.byref(n))
ptx = ctypes.create_string_buffer(n.value)
lib.nvrtcGetPTX(prog, ptx)
text = ptx.value.decode()
if args.ptx_out:
    open(args.ptx_out, "w").write(text)
print(f"NVRTC: {len(re.findall(r'[.]entry', text))} kernels compiled for {args.arch}" + (f" with {' '.join(extra)}" if extra else ""))
ptxas = glob.glob(os.path.join(args.root, "nvidia", "cuda_nvcc", "bin", "ptxas"))
if not ptxas:
    print("ptxas not found (install nvidia-cuda-nvcc-cu12 to assemble and count spills)")
    sys.exit(0)
with tempfile.TemporaryDirectory() as d:
    p = os.path.join(d, "engine.ptx")
    open(p, "w").write(text)
    r = subprocess.run([ptxas[0], f"-arch={args.arch}", "-v", p, "-o", os.path.join(d, "engine.cubin")], capture_output=True, text=True)
if r.returncode != 0:
    sys.exit(f"ptxas failed:\n{r.stderr}")
# ptxas -v prints "Compiling entry function 'NAME'", then its spill and register lines.
# Kernels that trade registers between warpgroups (setmaxnreg; attention_ws256.cu) need exactly the
# launch count their arithmetic assumes: 65,536 / (threads rounded up to warpgroups), rounded down to 8.
trade = {}
for chunk in re.split(r"(?=\.entry )", text)[1:]:
    name, ntid = re.match(r"\.entry (\w+)", chunk).group(1), re.search(r"\.maxntid (\d+)", chunk)
    if "setmaxnreg.inc" in chunk:
        trade[name] = 65536 // ((int(ntid.group(1)) + 127) // 128 * 128) // 8 * 8 if ntid else 0
bad, spills, entry = [], [], None
for l in r.stderr.splitlines():
    m = re.search(r"entry function '(\w+)'", l)
    if m:
        entry = m.group(1)
    m = re.search(r"Used (\d+) registers", l)
    if m and entry and entry.startswith("attention_tc"):
        print(f"  {entry}: {m.group(1)} registers" + (f" (setmaxnreg: {trade[entry]} needed)" if entry in trade else ""))
    if m and entry in trade and int(m.group(1)) != trade[entry]:
        bad.append(f"{entry}: {m.group(1)} registers, its setmaxnreg split needs {trade[entry]}")
    if "wgmma" in l or "Potential Performance Loss" in l:
        print("  " + l.strip())
    if "spill" in l and not re.search(r"\b0 bytes spill stores, 0 bytes spill loads", l):
        spills.append(f"{entry}: {l.strip()}")
print(f"ptxas: assembled; {len(spills)} kernels spill registers")
for l in spills:
    print("  " + l)
for l in bad:
    print("  " + l)
if bad:
    sys.exit("ptxas: a setmaxnreg kernel's launch registers do not match its split (its consumers would wait forever)")
