using SharpTune.Training;

namespace SharpTune.Workflows;

/// <summary>What every workflow does around its work: a failure becomes a <see cref="RunFailed"/> event before it propagates.</summary>
public static class Workflow
{
    public static T Observed<T>(string task, IRunObserver observer, Func<T> work)
    {
        try
        {
            return work();
        }
        catch (Exception e)
        {
            observer.On(new RunFailed(task, MessageOf(e)));
            throw;
        }
    }

    /// <summary>A failure in one line: the cause a wrapper exception stands for, its line breaks made spaces.</summary>
    public static string MessageOf(Exception e)
    {
        while (e is AggregateException { InnerExceptions.Count: 1 } a) e = a.InnerExceptions[0];
        // A static constructor's failure (a malformed SHARPTUNE_FAULT) says only which type failed; its cause says why.
        while (e is TypeInitializationException { InnerException: { } cause }) e = cause;
        return e.Message.ReplaceLineEndings(" ");
    }
}
