namespace SharpTune.Engine;

/// <summary>
/// A frozen weight matrix W [Rows × Cols] (out features × in features, as a Hugging Face Linear stores it) kept in
/// a compact storage — bf16/fp16 as stored on disk, or quantised — and multiplied without ever holding an fp32 copy
/// of the whole matrix: the storage is widened tile by tile inside the product.
/// </summary>
public interface IFrozenMatrix
{
    int Rows { get; }
    int Cols { get; }

    /// <summary>Bytes the storage occupies in memory (for reports and memory tests).</summary>
    long StorageBytes { get; }

    /// <summary>y[m × Rows] = x[m × Cols] · Wᵀ; y is overwritten.</summary>
    void MultiplyTransposed(float[] x, int m, float[] y);

    /// <summary>dx[m × Cols] = dy[m × Rows] · W, added to dx when accumulate, else overwriting it.</summary>
    void Multiply(float[] dy, int m, float[] dx, bool accumulate);

    /// <summary>Writes rows [firstRow, firstRow + count) of W, widened to fp32, into destination (count × Cols values).</summary>
    void ReadRows(int firstRow, int count, Span<float> destination);
}
