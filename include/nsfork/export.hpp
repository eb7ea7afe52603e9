// What the client library exports. It is built with hidden symbols (-fvisibility=hidden): only
// declarations marked NSFORK_API are part of its ABI; everything else stays internal.
#pragma once

#define NSFORK_API __attribute__((visibility("default")))
