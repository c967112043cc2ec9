using System.Text.Json.Nodes;
using SharpTune.Training;
using SharpTune.Workflows;

namespace SharpTune.Board.Tasks;

public enum BoardTaskState { Running, Finished, Failed, Cancelled }

/// <summary>
/// A library workflow (export, compare) run in the board's process on a thread of its own, watched as an
/// <see cref="IRunObserver"/>: its notes, its progress (tensors exported, questions answered) and how it ended, for
/// the page to poll. Training-like runs go to the run queue as child processes instead; these are short and need
/// the workflow's result object.
/// </summary>
public sealed class BoardTask : IRunObserver
{
    /// <summary>The most notes kept: a long run keeps its latest.</summary>
    public const int MaxNotes = 200;

    private readonly object _gate = new();
    private readonly List<string> _notes = [];
    private readonly CancellationTokenSource _cancel = new();
    private BoardTaskState _state = BoardTaskState.Running;
    private string? _progressLabel;
    private int _done, _total;
    private JsonNode? _result;
    private string? _error;
    private DateTime? _ended;

    public string Kind { get; }
    public DateTime Started { get; } = DateTime.UtcNow;

    private BoardTask(string kind) => Kind = kind;

    /// <summary>Runs <paramref name="work"/> in the background; what it returns becomes the task's result.</summary>
    public static BoardTask Start(string kind, Func<CancellationToken, IRunObserver, JsonNode> work)
    {
        var task = new BoardTask(kind);
        Task.Factory.StartNew(() =>
        {
            try
            {
                var result = work(task._cancel.Token, task);
                lock (task._gate) (task._state, task._result) = (BoardTaskState.Finished, result);
            }
            catch (OperationCanceledException) when (task._cancel.IsCancellationRequested)
            {
                lock (task._gate) task._state = BoardTaskState.Cancelled;
            }
            catch (Exception e)
            {
                lock (task._gate) (task._state, task._error) = (BoardTaskState.Failed, Workflow.MessageOf(e));
            }
            finally
            {
                lock (task._gate) task._ended = DateTime.UtcNow;
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        return task;
    }

    public BoardTaskState State
    {
        get { lock (_gate) return _state; }
    }

    /// <summary>Asks the workflow to stop at its next check (between tensors, batches or models).</summary>
    public void Cancel() => _cancel.Cancel();

    public void On(RunEvent e)
    {
        lock (_gate)
            switch (e)
            {
                case RunNote n:
                    _notes.Add(n.Text);
                    if (_notes.Count > MaxNotes) _notes.RemoveAt(0);
                    break;
                case ExportProgressed p:
                    (_progressLabel, _done, _total) = ("tensors", p.Done, p.Total);
                    break;
                case PredictionProgressed p:
                    (_progressLabel, _done, _total) = (p.Label, p.Done, p.Total);
                    break;
                case PredictionStarted p:
                    (_progressLabel, _done, _total) = (p.Label, 0, p.Total);
                    break;
            }
    }

    /// <summary>The task as the page reads it.</summary>
    public JsonObject ToJson()
    {
        lock (_gate)
            return new JsonObject
            {
                ["kind"] = Kind,
                ["state"] = _state.ToString().ToLowerInvariant(),
                ["seconds"] = ((_ended ?? DateTime.UtcNow) - Started).TotalSeconds,
                ["progress"] = _progressLabel is null ? null : new JsonObject { ["label"] = _progressLabel, ["done"] = _done, ["total"] = _total },
                ["notes"] = new JsonArray(_notes.Select(n => (JsonNode?)n).ToArray()),
                ["result"] = _result?.DeepClone(),
                ["error"] = _error,
            };
    }
}

/// <summary>A tab's one task at a time: the latest stays readable after it ends, until the next one starts.</summary>
public sealed class BoardTaskSlot
{
    private readonly object _gate = new();
    private BoardTask? _latest;

    public BoardTask? Latest
    {
        get { lock (_gate) return _latest; }
    }

    /// <summary>The latest task as the page reads it, or <c>{"state": "none"}</c>.</summary>
    public JsonObject ToJson() => Latest?.ToJson() ?? new JsonObject { ["state"] = "none" };

    /// <exception cref="BoardException">The previous task is still running.</exception>
    public BoardTask Start(string kind, Func<CancellationToken, IRunObserver, JsonNode> work)
    {
        lock (_gate)
        {
            if (_latest is { State: BoardTaskState.Running })
                throw new BoardException(409, $"a {_latest.Kind} is still running; wait for it or stop it");
            return _latest = BoardTask.Start(kind, work);
        }
    }
}
