using SharpTune.Engine;

namespace SharpTune.Tests.Engine;

/// <summary>
/// The CPU backend's tensors and the calls through which everything outside it reads, writes and moves rows of them
/// (issue 14 item 1): transfers at offsets, and row and column moves.
/// </summary>
public sealed class CpuBackendTensorTests
{
    private const int Rows = 4, Width = 3;
    private readonly CpuBackend _backend = CpuBackend.CreateDefault();

    private static float[] Values(int count, float start) => Enumerable.Range(0, count).Select(i => start + i).ToArray();

    [Fact]
    public void A_new_tensor_is_zero_and_transfers_read_and_write_at_an_offset()
    {
        var t = _backend.Allocate(Rows, Width);
        Assert.Equal([Rows, Width], t.Shape);
        Assert.Equal(Rows * Width, t.Length);
        Assert.All(_backend.ToHost(t), v => Assert.Equal(0f, v));

        _backend.CopyFromHost([7f, 8f], t, 5);
        var part = new float[4];
        _backend.CopyToHost(t, 4, part);
        Assert.Equal([0f, 7f, 8f, 0f], part);
    }

    [Fact]
    public void Row_calls_move_add_scale_and_clear_whole_rows_at_their_offsets()
    {
        var source = _backend.FromHost(Values(Rows * Width, 1), Rows, Width);
        var destination = _backend.FromHost(Values(Rows * Width, 100), Rows, Width);

        _backend.CopyRows(source, 1, destination, 2, 2);
        Assert.Equal([100f, 101, 102, 103, 104, 105, 4, 5, 6, 7, 8, 9], _backend.ToHost(destination));

        _backend.AddRows(source, 0, destination, 0, 1);
        _backend.ScaleRows(destination, 1, 1, 0.5f);
        _backend.ClearRows(destination, 3, 1);
        Assert.Equal([101f, 103, 105, 51.5f, 52, 52.5f, 4, 5, 6, 0, 0, 0], _backend.ToHost(destination));

        var grad = Values(2 * Width, 10);
        _backend.AddRowsToParameter(source, 2, grad, 1, 1);
        Assert.Equal([10f, 11, 12, 20, 22, 24], grad);

        var sums = new float[2];
        _backend.RowSums(source, sums);
        Assert.Equal([6f, 15f], sums);
    }

    [Fact]
    public void Columns_move_between_tensors_of_different_widths()
    {
        var fused = _backend.FromHost(Values(2 * 5, 0), 2, 5);
        var part = _backend.Allocate(2, 2);
        _backend.CopyColumns(fused, 3, part, 0, 2, 2);
        Assert.Equal([3f, 4, 8, 9], _backend.ToHost(part));
    }

    [Fact]
    public void Row_moves_between_tensors_of_different_widths_are_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => _backend.CopyRows(_backend.Allocate(2, 3), 0, _backend.Allocate(2, 4), 0, 1));
        Assert.Contains("3 wide", e.Message);
    }
}
