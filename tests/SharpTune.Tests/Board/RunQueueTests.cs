using System.Diagnostics;
using SharpTune.Board;
using SharpTune.Board.Runs;

namespace SharpTune.Tests.Board;

/// <summary>
/// The queue's closing of runs whose process is gone. The board's live view asks it on every pass while a run is
/// watched; it once read the record first and asked the queue afterwards, so a run that ended in between (aborted,
/// its final record written by the worker) was closed again from the stale read and shown as failed.
/// </summary>
public sealed class RunQueueTests
{
    [Fact]
    public void A_run_whose_worker_wrote_its_end_keeps_it_and_a_running_record_without_its_process_is_closed_as_failed()
    {
        string root = Directory.CreateTempSubdirectory("sharptune-runqueue-").FullName;
        try
        {
            var roots = new BoardRoots(root, root);
            using var queue = new RunQueue(roots, BoardSite.Cli);
            int gone = ExitedProcessId();

            string aborted = Directory.CreateDirectory(Path.Combine(root, "saves", "aborted")).FullName;
            new RunRecord { State = RunState.Aborted, Pid = gone, QueuedAt = DateTimeOffset.Now, ExitCode = 130, Error = "aborted: stopped at a step boundary" }
                .Write(aborted);
            queue.CloseIfOrphaned(aborted);
            Assert.Equal(RunState.Aborted, RunRecord.Read(aborted)!.State);

            string orphan = Directory.CreateDirectory(Path.Combine(root, "saves", "orphan")).FullName;
            new RunRecord { State = RunState.Running, Pid = gone, QueuedAt = DateTimeOffset.Now }.Write(orphan);
            queue.CloseIfOrphaned(orphan);
            var closed = RunRecord.Read(orphan)!;
            Assert.Equal(RunState.Failed, closed.State);
            Assert.Contains("without its results", closed.Error);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static int ExitedProcessId()
    {
        using var process = Process.Start(new ProcessStartInfo("/bin/true") { UseShellExecute = false })!;
        process.WaitForExit();
        return process.Id;
    }
}
