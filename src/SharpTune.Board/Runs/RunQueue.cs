using System.Diagnostics;
using System.Runtime.InteropServices;
using SharpTune.Board.Train;

namespace SharpTune.Board.Runs;

/// <summary>
/// The board's runs: each a `sharptune train training_args.yaml` child process in its output folder, its stdout and
/// stderr going to <see cref="RunRecord.LogFileName"/> there, its state in <see cref="RunRecord.FileName"/>. Queued
/// runs execute one at a time (training uses every core). A board that starts finds its earlier runs: queued ones
/// are queued again, and one whose process is gone is closed from what it left. Abort is Ctrl+C (SIGINT: the
/// step finishes and a checkpoint is saved), then a kill after <see cref="AbortGrace"/>.
/// </summary>
public sealed partial class RunQueue : IDisposable
{
    /// <summary>How long an aborted run may take to save its checkpoint before it is killed.</summary>
    public static readonly TimeSpan AbortGrace = TimeSpan.FromSeconds(30);

    private readonly BoardRoots _roots;
    private readonly SharpTuneCommand _command;
    private readonly Queue<string> _queued = new();
    private readonly HashSet<string> _abortRequested = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _wake = new(0);
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _worker;
    private readonly Lock _lock = new();
    private (string Dir, Process Process)? _running;

    public RunQueue(BoardRoots roots, SharpTuneCommand command)
    {
        _roots = roots;
        _command = command;
        foreach (var (dir, record) in RunFolders.BoardRuns(roots).OrderBy(r => r.Record.QueuedAt))
        {
            if (record.State == RunState.Queued) _queued.Enqueue(dir);
            else if (record.State == RunState.Running) CloseOrphan(dir, record);
        }
        _worker = Task.Run(WorkAsync);
        if (_queued.Count > 0) _wake.Release();
    }

    /// <summary>Writes the run's config and queues it; returns its folder.</summary>
    public string Enqueue(TrainForm.TrainPlan plan)
    {
        lock (_lock)
        {
            if (RunRecord.Read(plan.OutputDir) is { IsFinal: false })
                throw new BoardException(409, $"{_roots.Display(plan.OutputDir)} is already a queued or running run: choose another output folder");
            Directory.CreateDirectory(plan.OutputDir);
            IO.AtomicFile.WriteText(Path.Combine(plan.OutputDir, TrainForm.ConfigFileName), plan.Yaml);
            new RunRecord { State = RunState.Queued, QueuedAt = DateTimeOffset.Now }.Write(plan.OutputDir);
            _queued.Enqueue(plan.OutputDir);
        }
        _wake.Release();
        return plan.OutputDir;
    }

    /// <summary>Aborts a queued run at once, or a running one by SIGINT (then a kill after <see cref="AbortGrace"/>).</summary>
    public void Abort(string dir)
    {
        lock (_lock)
        {
            var record = RunRecord.Read(dir) ?? throw BoardException.NotFound($"{_roots.Display(dir)} is not a board run");
            if (record.IsFinal) throw new BoardException(409, $"{_roots.Display(dir)} has already ended ({record.State.ToString().ToLowerInvariant()})");
            if (record.State == RunState.Queued)
            {
                var rest = _queued.Where(d => d != dir).ToList();
                _queued.Clear();
                foreach (string d in rest) _queued.Enqueue(d);
                (record with { State = RunState.Aborted, EndedAt = DateTimeOffset.Now, Error = "aborted before it started" }).Write(dir);
                return;
            }
            if (_running is not ({ } runningDir, var process) || runningDir != dir)
                throw new BoardException(409, $"{_roots.Display(dir)} is not run by this board (it was started before a restart, or elsewhere)");
            _abortRequested.Add(dir);
            Interrupt(process.Id);
            _ = Task.Delay(AbortGrace, _stopping.Token).ContinueWith(_ =>
            {
                lock (_lock)
                    if (_running?.Process == process) process.Kill(entireProcessTree: true);
            }, TaskContinuationOptions.OnlyOnRanToCompletion);
        }
    }

    private async Task WorkAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                await _wake.WaitAsync(_stopping.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            string? dir;
            lock (_lock) _queued.TryDequeue(out dir);
            if (dir is null) continue;
            await RunAsync(dir);
            lock (_lock)
                if (_queued.Count > 0) _wake.Release();
        }
    }

    private async Task RunAsync(string dir)
    {
        Process process;
        RunRecord record;
        lock (_lock)
        {
            record = RunRecord.Read(dir)!;
            if (record.State != RunState.Queued) return;
            process = Start(dir);
            record = record with { State = RunState.Running, Pid = process.Id, StartedAt = DateTimeOffset.Now };
            record.Write(dir);
            _running = (dir, process);
        }
        try
        {
            await process.WaitForExitAsync(_stopping.Token);
        }
        catch (OperationCanceledException)
        {
            // The board stops; the run goes on, and the next board closes it from its files (CloseOrphan).
            return;
        }
        lock (_lock)
        {
            _running = null;
            int code = process.ExitCode;
            bool aborted = _abortRequested.Remove(dir);
            record = code switch
            {
                0 when !aborted => record with { State = RunState.Finished },
                _ when aborted || code == 130 => record with { State = RunState.Aborted, Error = code == 130 ? "aborted: stopped at a step boundary with a checkpoint saved" : $"aborted: killed after {AbortGrace.TotalSeconds:0} s" },
                _ => record with { State = RunState.Failed, Error = ErrorLine(dir) ?? $"sharptune train exited with code {code}" },
            };
            (record with { ExitCode = code, EndedAt = DateTimeOffset.Now }).Write(dir);
            process.Dispose();
        }
    }

    // sh execs the command with stdout and stderr appended to the run's log, so the process is the run itself and
    // its output does not depend on the board staying alive.
    private Process Start(string dir)
    {
        var start = new ProcessStartInfo("/bin/sh") { WorkingDirectory = dir, UseShellExecute = false };
        foreach (string arg in new[] { "-c", $"exec \"$@\" >> {RunRecord.LogFileName} 2>&1", "sh", _command.Program })
            start.ArgumentList.Add(arg);
        foreach (string arg in _command.LeadingArguments) start.ArgumentList.Add(arg);
        start.ArgumentList.Add("train");
        start.ArgumentList.Add(TrainForm.ConfigFileName);
        return Process.Start(start) ?? throw new InvalidOperationException($"could not start {_command.Program}");
    }

    /// <summary>The last "error: …" line a run printed (CliAction's one-line failure), if any.</summary>
    public static string? ErrorLine(string dir)
    {
        string log = Path.Combine(dir, RunRecord.LogFileName);
        return File.Exists(log) ? File.ReadLines(log).LastOrDefault(l => l.StartsWith("error: ", StringComparison.Ordinal)) : null;
    }

    /// <summary>
    /// Closes the run in <paramref name="dir"/> from its files (<see cref="CloseOrphan"/>) when its record says running
    /// but this board's worker does not run it. The record is read under the queue's lock: a run of this board that
    /// ends meanwhile is then seen in the final state its worker wrote, instead of being closed again from a read taken
    /// before it ended (which turned an aborted run into a failed one).
    /// </summary>
    public void CloseIfOrphaned(string dir)
    {
        lock (_lock)
            if (RunRecord.Read(dir) is { State: RunState.Running } running && _running?.Dir != dir) CloseOrphan(dir, running);
    }

    /// <summary>
    /// A running run this board did not start (a previous board did): if its process is gone, its files say how it
    /// ended and the record is closed; if it still runs, it is left as it is.
    /// </summary>
    public static void CloseOrphan(string dir, RunRecord record)
    {
        if (record.Pid is int pid && IsAlive(pid)) return;
        bool finished = File.Exists(Path.Combine(dir, "train_results.json"));
        (record with
        {
            State = finished ? RunState.Finished : RunState.Failed,
            EndedAt = DateTimeOffset.Now,
            Error = finished ? null : ErrorLine(dir) ?? "the run ended while no board watched it, without its results",
        }).Write(dir);
    }

    private static bool IsAlive(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private const int SigInt = 2;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);

    private static void Interrupt(int pid)
    {
        if (kill(pid, SigInt) != 0)
            throw new InvalidOperationException($"could not send SIGINT to process {pid} (errno {Marshal.GetLastPInvokeError()})");
    }

    public void Dispose()
    {
        _stopping.Cancel();
        try { _worker.Wait(TimeSpan.FromSeconds(5)); }
        catch (AggregateException) { }
        _stopping.Dispose();
    }
}
