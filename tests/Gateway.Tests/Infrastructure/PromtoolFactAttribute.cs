namespace Gateway.Tests.Infrastructure;

/// <summary>
/// A fact that needs promtool. xunit 2 cannot skip from inside a running test, but it reads <see cref="FactAttribute.Skip"/>
/// from the attribute instance at discovery: set here, the test is reported as skipped with the reason in the
/// summary of <c>dotnet test</c> (not silently green). With <c>CI=true</c> or <see cref="Promtool.RequireVariable"/>=1 it is never
/// skipped, so a missing promtool fails it.
/// </summary>
public sealed class PromtoolFactAttribute : FactAttribute
{
    public PromtoolFactAttribute()
    {
        if (!Promtool.Required && Promtool.Find() is null)
        {
            Skip = $"promtool not installed: skipped (Debian package 'prometheus'; CI=true or {Promtool.RequireVariable}=1 makes it required)";
        }
    }
}
