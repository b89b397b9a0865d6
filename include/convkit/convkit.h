// convkit — umbrella header.
#pragma once
#include <convkit/autograd.h>
#include <convkit/error.h>
#include <convkit/filters.h>
#include <convkit/functional.h>
#include <convkit/image.h>
#include <convkit/io.h>
#include <convkit/nn.h>
#include <convkit/optim.h>
#include <convkit/plot.h>
#include <convkit/runtime.h>
#include <convkit/tensor.h>
