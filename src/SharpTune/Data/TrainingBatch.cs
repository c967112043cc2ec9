namespace SharpTune.Data;

/// <summary>
/// A padded batch, row-major [Batch × Length]: ids, attention mask (1 real, 0 padding) and labels (-100 = no loss).
/// Padding is on the right, as LLaMA-Factory's collator pads for training. A row packed with neat_packing numbers its
/// examples in the attention mask instead (1, 1, 2, 2, 2, 3, …, then 0 for padding, as LLaMA-Factory marks them): a
/// token attends only within its example.
/// </summary>
public sealed class TrainingBatch
{
    public int Batch { get; }
    public int Length { get; }
    public int[] InputIds { get; }
    public int[] AttentionMask { get; }
    public int[] Labels { get; }

    public TrainingBatch(int batch, int length, int[] inputIds, int[] attentionMask, int[] labels)
    {
        int n = batch * length;
        if (batch <= 0 || length <= 0) throw new ArgumentException($"a batch needs rows and columns, got {batch} × {length}");
        if (inputIds.Length != n || attentionMask.Length != n || labels.Length != n)
            throw new ArgumentException($"batch {batch} × {length}: input_ids, attention_mask and labels must each hold {n} values");
        Batch = batch;
        Length = length;
        InputIds = inputIds;
        AttentionMask = attentionMask;
        Labels = labels;
    }

    /// <summary>
    /// Each token's position [Batch × Length] (packed rows restart it at every example, as LLaMA-Factory's
    /// position_ids do); null for positions 0..Length-1 in every row, as transformers uses without position_ids.
    /// </summary>
    public int[]? PositionIds
    {
        get => _positionIds;
        init
        {
            if (value is not null && value.Length != Batch * Length)
                throw new ArgumentException($"batch {Batch} × {Length}: position_ids must hold {Batch * Length} values, got {value.Length}");
            _positionIds = value;
        }
    }

    private readonly int[]? _positionIds;

    /// <summary>
    /// Stage kto's other inputs (LLaMA-Factory's <c>KTODataCollatorWithPadding</c>): the KL batch and each row's tag;
    /// null for every other stage.
    /// </summary>
    public KtoInputs? Kto { get; init; }

    /// <summary>Real (unpadded) tokens in the batch, what tokens/s counts.</summary>
    public int RealTokens
    {
        get
        {
            int n = 0;
            foreach (int m in AttentionMask)
                if (m != 0) n++;
            return n;
        }
    }
}

/// <summary>
/// The KL batch of a KTO batch (row r is row r's prompt followed by another record's answer, padded on its own as
/// LLaMA-Factory pads it) and the tags of the batch's rows (true: the answer is desirable).
/// </summary>
public sealed record KtoInputs(TrainingBatch KlBatch, bool[] Desirable);
