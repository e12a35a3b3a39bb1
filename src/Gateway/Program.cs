var b = WebApplication.CreateBuilder(args);
b.Services.AddReverseProxy();
var app = b.Build();
app.MapReverseProxy();
app.Run();
