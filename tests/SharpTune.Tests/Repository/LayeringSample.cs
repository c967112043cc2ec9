// Two namespaces standing in for a lower and an upper layer, for the layer checker's own tests (LayeringTests).
namespace SharpTune.Tests.Repository.LayeringSample.Upper
{
    public static class Helper
    {
        public static int Twice(int x) => 2 * x;
    }

    public sealed class Marker;

    public sealed class UsesDownward
    {
        public Lower.HoldsUpward? Below;
    }
}

namespace SharpTune.Tests.Repository.LayeringSample.Lower
{
    public static class CallsUpward
    {
        public static int Run(int x) => Upper.Helper.Twice(x) + 1;
    }

    public sealed class HoldsUpward
    {
        public Upper.Marker? Kept;

        public static void Take(Upper.Marker? marker) { }
    }
}
