namespace SharpTune.Training.Trainer;

/// <summary>
/// One entry of transformers' <c>log_history</c>: keys in the order the Trainer logged them (for example loss,
/// grad_norm, learning_rate, epoch, step), values int or double.
/// </summary>
public sealed class LogEntry
{
    private readonly List<KeyValuePair<string, object?>> _values;

    public LogEntry(IEnumerable<KeyValuePair<string, object?>> values) => _values = values.ToList();

    public IReadOnlyList<KeyValuePair<string, object?>> Values => _values;

    public int Step => TryGetDouble("step") is { } step ? (int)step : 0;

    public bool Contains(string key) => _values.Exists(kv => kv.Key == key);

    /// <summary>The value of <paramref name="key"/> as a double, or null when the entry does not hold it.</summary>
    public double? TryGetDouble(string key)
    {
        foreach (var (k, v) in _values)
            if (k == key)
                return v switch { double d => d, long l => l, int i => i, _ => null };
        return null;
    }

    public override string ToString() => PythonJson.Dumps(_values);
}
