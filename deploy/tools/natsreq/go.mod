module rtdash/deploy/tools/natsreq

go 1.26.0
