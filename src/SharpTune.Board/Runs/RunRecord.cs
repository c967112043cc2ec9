using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.IO;

namespace SharpTune.Board.Runs;

/// <summary>Where a run is; the last three are final.</summary>
public enum RunState { Queued, Running, Finished, Failed, Aborted }

/// <summary>
/// A board run's state, kept beside its output as <c>board_run.json</c> and written atomically at every change,
/// so a reloaded page, another browser or a restarted board finds the run as it is.
/// </summary>
public sealed record RunRecord
{
    public const string FileName = "board_run.json";
    /// <summary>The run's stdout and stderr.</summary>
    public const string LogFileName = "board_run.log";

    public RunState State { get; init; }
    public int? Pid { get; init; }
    public DateTimeOffset QueuedAt { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    public DateTimeOffset? EndedAt { get; init; }
    public int? ExitCode { get; init; }
    /// <summary>Why it failed or stopped: the error line the run printed, or what the board saw.</summary>
    public string? Error { get; init; }

    public bool IsFinal => State is RunState.Finished or RunState.Failed or RunState.Aborted;

    public JsonObject ToJson() => new()
    {
        ["state"] = State.ToString().ToLowerInvariant(),
        ["pid"] = Pid,
        ["queued_at"] = QueuedAt.ToString("O"),
        ["started_at"] = StartedAt?.ToString("O"),
        ["ended_at"] = EndedAt?.ToString("O"),
        ["exit_code"] = ExitCode,
        ["error"] = Error,
    };

    public void Write(string runDir) => AtomicFile.WriteText(Path.Combine(runDir, FileName), ToJson().ToJsonString(BoardJson.Options) + "\n");

    /// <summary>The record in a run folder, or null when the folder has none.</summary>
    /// <exception cref="InvalidDataException">The file is not a run record; the message names it and the field.</exception>
    public static RunRecord? Read(string runDir)
    {
        string path = Path.Combine(runDir, FileName);
        if (!File.Exists(path)) return null;
        try
        {
            var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            return new RunRecord
            {
                State = Enum.Parse<RunState>(json["state"]!.GetValue<string>(), ignoreCase: true),
                Pid = json["pid"]?.GetValue<int>(),
                QueuedAt = DateTimeOffset.Parse(json["queued_at"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture),
                StartedAt = json["started_at"] is { } started ? DateTimeOffset.Parse(started.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture) : null,
                EndedAt = json["ended_at"] is { } ended ? DateTimeOffset.Parse(ended.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture) : null,
                ExitCode = json["exit_code"]?.GetValue<int>(),
                Error = json["error"]?.GetValue<string>(),
            };
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException or FormatException or ArgumentException)
        {
            throw new InvalidDataException($"{path}: not a board run record ({e.Message})", e);
        }
    }
}
