#!/usr/bin/env python3
"""Writes the binary seeds of the harnesses whose inputs are not text files.

    make_seeds.py OUT_DIR TESTDATA_DIR

OUT_DIR/<harness>/ gets: wire_audio (framed PCM chunks), agent_socket (WebSocket messages),
grpc_requests (protobuf messages,
hand-encoded), torch_checkpoint (small checkpoints as torch.save writes them, bare data.pkl
pickles, the real checkpoints' data.pkl). TESTDATA_DIR is read in place; a file missing there
is skipped.
"""
import os
import struct
import sys
import zipfile


def write(out, name, data):
    os.makedirs(os.path.dirname(os.path.join(out, name)), exist_ok=True)
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


def read(path, limit=None):
    try:
        with open(path, "rb") as f:
            return f.read(limit) if limit else f.read()
    except OSError:
        return None


# wire_audio: flags, rate byte, then chunks (length byte, bytes); 0 ends a piece -------------
def chunks(pcm, sizes):
    out = b""
    at = 0
    for n in sizes:
        piece = pcm[at:at + n]
        at += n
        out += bytes([len(piece)]) + piece
    return out


def clip(testdata, size):
    """The first `size` bytes of a test clip (float32 at 16 kHz), and the same as int16."""
    path = os.path.join(testdata, "audio/short_0p3s.f32")
    f32 = read(path, size) or struct.pack("<4f", 0, .5, -.5, 0)
    floats = struct.unpack("<%df" % (len(f32) // 4), f32)
    return f32, b"".join(struct.pack("<h", int(v * 32767)) for v in floats)


def wire_audio_seeds(out, testdata):
    f32, s16 = clip(testdata, 4000)
    write(out, "wire_audio/s16_16k", b"\x00\x00" + chunks(s16, [200, 3, 97, 254]) + b"\x00")
    write(out, "wire_audio/f32_48k", b"\x01\x05" + chunks(f32, [250, 1, 2, 5, 240]) + b"\x00")
    write(out, "wire_audio/s16_44k_split", b"\x00\x04" + chunks(s16, [1, 1, 1, 120]) + b"\xff" +
          chunks(s16[200:], [100]) + b"\x00" + chunks(s16[300:], [50]))
    write(out, "wire_audio/f32_raw_rate_8000",
          b"\x03" + struct.pack("<i", 8000) + chunks(f32, [128]))
    write(out, "wire_audio/s16_raw_rate_bad", b"\x02" + struct.pack("<i", 7999) + b"\x04abcd")


# grpc_requests: protobuf wire format by hand --------------------------------------------------
def varint(v):
    v &= (1 << 64) - 1
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(number, value):
    if isinstance(value, bytes):
        return varint(number << 3 | 2) + varint(len(value)) + value
    return varint(number << 3) + varint(value)


def message(*fields):
    return b"".join(field(n, v) for n, v in fields if v is not None)


def framed(*messages):
    return b"".join(struct.pack(">H", len(m)) + m for m in messages)


def grpc_seeds(out, testdata):
    f32, s16 = clip(testdata, 3200)
    config = message((1, b"demo"), (2, 0), (3, 0), (4, 0), (5, 16000))
    write(out, "grpc_requests/stream", b"\x00" + framed(
        message((1, config)), message((2, s16[:301])), message((2, s16[301:])), message((3, 1))))
    config = message((1, b"demo"), (3, 2), (4, 1), (5, 48000))
    write(out, "grpc_requests/stream_f32_48k", b"\x00" + framed(
        message((1, config)), message((2, f32[:999])), message((2, f32[999:])), message((3, 1))))
    live = message((1, b"demo"), (2, 1), (3, 1), (4, 0), (5, 22050), (6, 300), (7, b"abc"))
    write(out, "grpc_requests/live", b"\x01" + framed(
        message((1, live)), message((2, s16[:500])), message((3, 1)), message((2, s16[500:])),
        message((4, 1)), message((2, s16[:7])), message((3, 1))))
    write(out, "grpc_requests/live_empty", b"\x01" + framed(message((1, message((1, b"x")))), b""))
    composite = message((1, b"demo"), (3, f32), (5, 4), (6, 0), (7, 16000))
    write(out, "grpc_requests/composite", b"\x02" + framed(composite))
    composite = message((1, b"demo"), (2, b"\x00" * 16), (3, f32[:1600]), (4, b"old"), (5, 1),
                        (6, 2147483647), (7, 44100))
    write(out, "grpc_requests/composite_44k", b"\x02" + framed(composite))


# torch_checkpoint: pickles as torch.save writes them ------------------------------------------
def p_int(v):
    return b"K" + bytes([v]) if 0 <= v < 256 else b"J" + struct.pack("<i", v)


def p_str(s):
    s = s.encode()
    return b"X" + struct.pack("<I", len(s)) + s


def p_ints(values):
    return b"(" + b"".join(p_int(v) for v in values) + b"t"


STORAGES = {"float32": ("FloatStorage", "<f"), "float64": ("DoubleStorage", "<d"),
            "int64": ("LongStorage", "<q"), "float16": ("HalfStorage", "<e"),
            "int32": ("IntStorage", "<i")}


def state_dict_pickle(tensors, wrap=None, memo=False):
    """tensors: (key, dtype, shape, storage key, numel, offset, stride)."""
    p = b"\x80\x02"
    if wrap:
        p += b"}(" + p_str("epoch") + p_int(7) + p_str(wrap)
    p += b"ccollections\nOrderedDict\n)R"
    if memo:
        p += b"q\x00"
    p += b"("
    for key, dtype, shape, skey, numel, offset, stride in tensors:
        p += p_str(key) + b"ctorch._utils\n_rebuild_tensor_v2\n(("
        p += p_str("storage") + b"ctorch\n" + STORAGES[dtype][0].encode() + b"\n"
        p += p_str(skey) + p_str("cpu") + p_int(numel) + b"tQ"
        p += p_int(offset) + p_ints(shape) + p_ints(stride) + b"\x89ccollections\nOrderedDict\n)RtR"
    p += b"uu." if wrap else b"u."
    return p


def checkpoint(name, tensors, storages, wrap=None):
    path = "/tmp/lipsync-seed-%d.pth" % os.getpid()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(name + "/data.pkl", state_dict_pickle(tensors, wrap))
        z.writestr(name + "/byteorder", "little")
        for key, data in storages.items():
            z.writestr(name + "/data/" + key, data)
        z.writestr(name + "/version", "3\n")
    data = read(path)
    os.remove(path)
    return data


def torch_seeds(out, testdata):
    def values(dtype, n):
        return b"".join(struct.pack(STORAGES[dtype][1], (i % 7) - 3) for i in range(n))

    write(out, "torch_checkpoint/small.pth", checkpoint("small", [
        ("conv.weight", "float32", [2, 1, 3, 3], "0", 18, 0, [9, 9, 3, 1]),
        ("conv.bias", "float32", [2], "1", 2, 0, [1]),
        ("bn.num_batches_tracked", "int64", [], "2", 1, 0, []),
    ], {"0": values("float32", 18), "1": values("float32", 2), "2": values("int64", 1)}))
    write(out, "torch_checkpoint/wrapped_transposed.pth", checkpoint("archive", [
        ("module.fc.weight", "float64", [3, 2], "0", 8, 2, [1, 3]),
        ("module.fc.bias", "float16", [3], "1", 3, 0, [1]),
        ("module.emb", "int32", [2, 2], "0", 8, 0, [2, 1]),
    ], {"0": values("float64", 8), "1": values("float16", 3)}, wrap="state_dict"))
    # Bare pickles: the harness stores them beside storages 0..3 (4, 64, 1024, 0 bytes).
    write(out, "torch_checkpoint/pickle_small.pkl", state_dict_pickle([
        ("a", "float32", [1], "0", 1, 0, [1]),
        ("b", "float32", [4, 4], "1", 16, 0, [4, 1]),
        ("c", "float64", [8, 4], "2", 128, 3, [1, 8]),
        ("d", "float16", [0], "3", 0, 0, [0]),
    ], memo=True))
    write(out, "torch_checkpoint/pickle_wrapped.pkl", state_dict_pickle(
        [("module.x", "int64", [2, 2], "1", 8, 0, [2, 1])], wrap="model"))
    for name in ("audio_encoder",):  # (unet's data.pkl, 88 KB, is longer than -max_len)
        path = os.path.join(testdata, "checkpoints", name + ".pth")
        try:
            with zipfile.ZipFile(path) as z:
                write(out, "torch_checkpoint/%s_data.pkl" % name, z.read(name + "/data.pkl"))
        except (OSError, KeyError, zipfile.BadZipFile):
            pass
    legacy = read(os.path.join(testdata, "checkpoints/unet_legacy.pth"), 4096)
    if legacy:
        write(out, "torch_checkpoint/legacy_head.pth", legacy)


# agent_socket: kind byte (0 binary, 1 text, 2 room, 3 no room, 4 end), 2-byte length, bytes --
def agent_seeds(out, testdata):
    f32, s16 = clip(testdata, 3200)

    def msg(kind, data):
        data = data.encode() if isinstance(data, str) else data
        return bytes([kind]) + struct.pack("<H", len(data)) + data

    text = lambda t: msg(1, t)
    binary = lambda b: msg(0, b)
    write(out, "agent_socket/turn_24k", text('{"type":"utterance","sample_rate":24000}') +
          binary(s16[:999]) + binary(s16[999:]) + text('{"type":"segment_end"}') +
          text('{"type":"ping"}'))
    write(out, "agent_socket/f32_flow", text('{"type":"utterance","encoding":"f32le"}') +
          b"\x03" + binary(f32[:1000]) + b"\x02" + binary(f32[1000:]) +
          text('{"type":"interrupt"}') + binary(s16[:10]))
    write(out, "agent_socket/errors", binary(b"\x01\x02") + text('{"type":"dance"}') +
          text("[1]") + text('{"type":"utterance","sample_rate":7999}') +
          text('{"type":"segment_end"}') + text('{"type":"utterance"}') +
          text('{"type":"utterance"}') + binary(s16[:3]) + text('{"type":"segment_end"}'))


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: make_seeds.py OUT_DIR TESTDATA_DIR")
    out, testdata = sys.argv[1], sys.argv[2]
    wire_audio_seeds(out, testdata)
    grpc_seeds(out, testdata)
    torch_seeds(out, testdata)
    agent_seeds(out, testdata)


if __name__ == "__main__":
    main()
