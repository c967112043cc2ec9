using System.Runtime.InteropServices;
using SharpTune.Engine;
using SharpTune.IO.Safetensors;

namespace SharpTune.Tests.IO;

public class SafetensorsReaderTests
{
    private static readonly string SingleFile = TestPaths.Fixtures("qwen2-small-vocab", "model.safetensors");
    private static readonly string ShardedDir = TestPaths.Fixtures("qwen2-small-vocab-sharded");

    [Fact]
    public void OpensFixtureWithExpectedHeader()
    {
        using var f = SafetensorsFile.Open(SingleFile);
        Assert.Equal(new Dictionary<string, string> { ["format"] = "pt" }, f.Metadata);
        Assert.Equal(39, f.Tensors.Count);
        Assert.All(f.Tensors, t => Assert.Equal(DType.F32, t.DType));

        TensorInfo lmHead = f.Get("lm_head.weight");
        Assert.Equal([512L, 48L], lmHead.Shape);
        Assert.Equal(0, lmHead.Begin);
        Assert.Equal(98304, lmHead.End);
        Assert.Equal(512 * 48, lmHead.ElementCount);
        Assert.Equal(512 * 48 * 4, lmHead.ByteSize);

        Assert.Equal([48L], f.Get("model.norm.weight").Shape);
        Assert.True(f.Contains("model.layers.2.self_attn.v_proj.bias"));
        Assert.False(f.Contains("model.layers.3.self_attn.v_proj.bias"));

        // Listed in file order, tiling the data section.
        long end = 0;
        foreach (TensorInfo t in f.Tensors)
        {
            Assert.Equal(end, t.Begin);
            end = t.End;
        }
        Assert.Equal(new FileInfo(SingleFile).Length - 8 - 3952, end);
    }

    [Fact]
    public unsafe void BytesPointerAndReadFloat32AgreeWithTheFile()
    {
        byte[] raw = File.ReadAllBytes(SingleFile);
        const int dataStart = 8 + 3952;
        using var f = SafetensorsFile.Open(SingleFile);
        foreach (TensorInfo t in f.Tensors)
        {
            ReadOnlySpan<byte> bytes = f.Bytes(t.Name);
            Assert.True(bytes.SequenceEqual(raw.AsSpan(dataStart + (int)t.Begin, (int)t.ByteSize)), t.Name);
            fixed (byte* p = bytes)
                Assert.True(p == f.Pointer(t.Name));
            Assert.Equal(MemoryMarshal.Cast<byte, float>(bytes).ToArray(), f.ReadFloat32(t.Name));
        }
        // Norm weights were set to 1 + 0.1·N(0,1) by the generator: a sanity check that the floats are real values.
        Assert.All(f.ReadFloat32("model.norm.weight"), v => Assert.InRange(v, 0.4f, 1.6f));
    }

    [Fact]
    public void ShardedCheckpointIsByteIdenticalToSingleFile()
    {
        using var single = SafetensorsCheckpoint.OpenDirectory(TestPaths.Fixtures("qwen2-small-vocab"));
        using var sharded = SafetensorsCheckpoint.OpenDirectory(ShardedDir);

        // The single-file folder's reference/ subfolder must not be picked up: only top-level *.safetensors count.
        Assert.Single(single.Files);
        Assert.Equal(3, sharded.Files.Count);
        Assert.Equal(39, sharded.Names.Count);
        Assert.Equal(single.Names, sharded.Names);

        foreach (string name in single.Names)
        {
            TensorInfo a = single.Get(name), b = sharded.Get(name);
            Assert.Equal(a.DType, b.DType);
            Assert.Equal(a.Shape, b.Shape);
            Assert.True(single.Bytes(name).SequenceEqual(sharded.Bytes(name)), name);
            Assert.Equal(single.ReadFloat32(name), sharded.ReadFloat32(name));
        }

        Assert.Equal("model-00003-of-00003.safetensors", Path.GetFileName(sharded.File("lm_head.weight").Path));
        Assert.Equal("model-00001-of-00003.safetensors", Path.GetFileName(sharded.File("model.embed_tokens.weight").Path));
        Assert.Equal("model-00002-of-00003.safetensors", Path.GetFileName(sharded.File("model.norm.weight").Path));
    }

    [Fact]
    public void MissingTensorThrowsKeyNotFoundNamingFileAndTensor()
    {
        using var f = SafetensorsFile.Open(SingleFile);
        var e = Assert.Throws<KeyNotFoundException>(() => f.Get("model.layers.9.mlp.up_proj.weight"));
        Assert.Contains("model.safetensors", e.Message);
        Assert.Contains("model.layers.9.mlp.up_proj.weight", e.Message);

        using var c = SafetensorsCheckpoint.OpenDirectory(ShardedDir);
        var e2 = Assert.Throws<KeyNotFoundException>(() => c.ReadFloat32("nope.weight"));
        Assert.Contains("qwen2-small-vocab-sharded", e2.Message);
        Assert.Contains("nope.weight", e2.Message);
    }

    [Fact]
    public void AccessAfterDisposeThrows()
    {
        var f = SafetensorsFile.Open(SingleFile);
        f.Dispose();
        f.Dispose();
        Assert.Throws<ObjectDisposedException>(() => f.ReadFloat32("lm_head.weight"));
        Assert.Throws<ObjectDisposedException>(() => { _ = f.Bytes("lm_head.weight"); });
    }

    [Fact]
    public void ReadFloat32WidensEveryDtypeAndIntReadersWiden()
    {
        using var dir = new TempDir();
        string path = dir.File("all.safetensors");
        float[] halfExact = [1.5f, -2.25f, 0f, 1024f];
        SafetensorsWriter.Write(path,
        [
            ("bf16", DType.BF16, [4], SafetensorsWriter.EncodeFloat32(halfExact, DType.BF16)),
            ("f16", DType.F16, [4], SafetensorsWriter.EncodeFloat32(halfExact, DType.F16)),
            ("i8", DType.I8, [3], new byte[] { 0xFF, 0x7F, 0x80 }),
            ("u8", DType.U8, [3], new byte[] { 0xFF, 0x7F, 0x80 }),
            ("i32", DType.I32, [2], MemoryMarshal.AsBytes<int>([-7, 1 << 20]).ToArray()),
            ("i64", DType.I64, [2], MemoryMarshal.AsBytes<long>([-9, 1L << 40]).ToArray()),
        ]);
        using var f = SafetensorsFile.Open(path);
        Assert.Equal(halfExact, f.ReadFloat32("bf16"));
        Assert.Equal(halfExact, f.ReadFloat32("f16"));
        Assert.Equal([-1f, 127f, -128f], f.ReadFloat32("i8"));
        Assert.Equal([255f, 127f, 128f], f.ReadFloat32("u8"));
        Assert.Equal([-7f, 1 << 20], f.ReadFloat32("i32"));
        Assert.Equal([-9f, 1L << 40], f.ReadFloat32("i64"));

        Assert.Equal([-1, 127, -128], f.ReadInt32("i8"));
        Assert.Equal([255, 127, 128], f.ReadInt32("u8"));
        Assert.Equal([-7, 1 << 20], f.ReadInt32("i32"));
        Assert.Equal([-9L, 1L << 40], f.ReadInt64("i64"));
        Assert.Equal([-7L, 1 << 20], f.ReadInt64("i32"));
        Assert.Throws<InvalidOperationException>(() => f.ReadInt32("i64"));
        Assert.Throws<InvalidOperationException>(() => f.ReadInt64("f16"));
    }

    [Fact]
    public void EmptyAndScalarTensorsAreAllowed()
    {
        using var dir = new TempDir();
        string path = dir.Raw("x.safetensors",
            """{"empty":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]},"scalar":{"dtype":"I64","shape":[],"data_offsets":[0,8]}}""",
            BitConverter.GetBytes(42L));
        using var f = SafetensorsFile.Open(path);
        Assert.Empty(f.ReadFloat32("empty"));
        Assert.Equal(0, f.Bytes("empty").Length);
        Assert.Equal([42L], f.ReadInt64("scalar"));
        Assert.Equal(1, f.Get("scalar").ElementCount);
        Assert.Empty(f.Metadata);
    }

    [Fact]
    public void UnindexedDirectoryWithSeveralFilesIsMerged()
    {
        using var dir = new TempDir();
        SafetensorsWriter.Write(dir.File("a.safetensors"), [("x", [2L], new float[] { 1, 2 })]);
        SafetensorsWriter.Write(dir.File("b.safetensors"), [("y", [1L], new float[] { 3 })]);
        File.WriteAllText(dir.File("notes.txt"), "not weights");
        using var c = SafetensorsCheckpoint.OpenDirectory(dir.Path);
        Assert.Equal(["x", "y"], c.Names);
        Assert.Equal([3f], c.ReadFloat32("y"));
        Assert.Equal("b.safetensors", Path.GetFileName(c.File("y").Path));
    }

    [Fact]
    public void ModelSafetensorsIsTheWholeModelAsTransformersLoadsIt()
    {
        // A reward model's folder: the weights and, beside them, the value head, which is not part of the model.
        using var dir = new TempDir();
        SafetensorsWriter.Write(dir.File("model.safetensors"), [("x", [2L], new float[] { 1, 2 })]);
        SafetensorsWriter.Write(dir.File("value_head.safetensors"), [("v_head.summary.bias", [1L], new float[] { 3 })]);
        using var c = SafetensorsCheckpoint.OpenDirectory(dir.Path);
        Assert.Equal(["x"], c.Names);
    }
}
